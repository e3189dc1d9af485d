//! One route in a route table. Routes carry no tags and no id of their own: the table id
//! and the destination identify one, so `find` reads the table and the id is
//! `<rtb-id>/<destination>`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{self as t, RouteState};

use super::{Aws, ResourceKind, ec2, props};
use crate::aws::err;
use crate::core::diff::{AttrSpec, ChangeAction, Settings, settings};
use crate::core::inspect::{InspectCtx, Inspection};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, NodeSpec, Props, RouteTarget};

pub struct Route;

pub const ATTRS: &[AttrSpec] = &[AttrSpec::with(
    "target",
    ChangeAction::Update,
    "ReplaceRoute switches it atomically: no window without a route",
    &[],
)];

/// The desired settings (pure): where the route sends traffic, with the target's id.
pub fn desired_settings(target: &RouteTarget, deps: &BTreeMap<String, Outputs>) -> Settings {
    let t = match target {
        RouteTarget::InternetGateway(key) => format!("internet gateway {}", super::dep_output(deps, key, "id")),
        RouteTarget::NatGateway(key) => format!("NAT gateway {}", super::dep_output(deps, key, "id")),
    };
    settings([("target", t)])
}

/// Where the table's route for `destination` sends traffic now; `None` without one.
fn live_target(table: &t::RouteTable, destination: &str) -> Option<String> {
    let r = table
        .routes()
        .iter()
        .find(|r| r.destination_cidr_block() == Some(destination))?;
    let to = if let Some(nat) = r.nat_gateway_id() {
        format!("NAT gateway {nat}")
    } else {
        format!("internet gateway {}", r.gateway_id().unwrap_or("?"))
    };
    Some(match r.state() {
        Some(RouteState::Blackhole) => format!("{to} (blackhole)"),
        _ => to,
    })
}

/// The gateway a route points at, by id.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Gateway(String),
    Nat(String),
}

fn target(cx: &NodeCtx<'_>, target: &RouteTarget) -> Result<Target, ResourceError> {
    Ok(match target {
        RouteTarget::InternetGateway(key) => Target::Gateway(cx.dep_id(key)?.to_string()),
        RouteTarget::NatGateway(key) => Target::Nat(cx.dep_id(key)?.to_string()),
    })
}

/// Whether the table already routes `destination` to `target`, actively (a route whose
/// NAT gateway was deleted turns `blackhole` and must be replaced).
fn has_route(table: &t::RouteTable, destination: &str, target: &Target) -> bool {
    table.routes().iter().any(|r| {
        r.destination_cidr_block() == Some(destination)
            && r.state() == Some(&RouteState::Active)
            && match target {
                Target::Gateway(id) => r.gateway_id() == Some(id),
                Target::Nat(id) => r.nat_gateway_id() == Some(id),
            }
    })
}

fn outputs(table_id: &str, destination: &str) -> Outputs {
    Outputs::new()
        .with("id", format!("{table_id}/{destination}"))
        .with("table_id", table_id)
        .with("destination", destination)
}

async fn read_table(aws: &Aws, table_id: &str) -> Result<Option<t::RouteTable>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_route_tables()
        .route_table_ids(table_id)
        .send()
        .await
        .map_err(err("reading the route table"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.route_tables().first().cloned()))
}

async fn create_route(aws: &Aws, table_id: &str, destination: &str, target: &Target) -> Result<(), ResourceError> {
    let b = aws
        .clients
        .ec2
        .create_route()
        .route_table_id(table_id)
        .destination_cidr_block(destination);
    let b = match target {
        Target::Gateway(id) => b.gateway_id(id),
        Target::Nat(id) => b.nat_gateway_id(id),
    };
    b.send().await.map(|_| ()).map_err(err("creating the route"))
}

async fn replace_route(aws: &Aws, table_id: &str, destination: &str, target: &Target) -> Result<(), ResourceError> {
    let b = aws
        .clients
        .ec2
        .replace_route()
        .route_table_id(table_id)
        .destination_cidr_block(destination);
    let b = match target {
        Target::Gateway(id) => b.gateway_id(id),
        Target::Nat(id) => b.nat_gateway_id(id),
    };
    b.send().await.map(|_| ()).map_err(err("replacing the route"))
}

/// Create the route, or point the existing one (wrong target, blackhole) at `target`.
async fn put_route(aws: &Aws, table_id: &str, destination: &str, target: &Target) -> Result<(), ResourceError> {
    // A gateway that just became ready may not be visible to the route call yet.
    ec2::retry_not_found("creating the route", || async {
        match create_route(aws, table_id, destination, target).await {
            Err(e) if ec2::has_code(&e, "RouteAlreadyExists") => {
                replace_route(aws, table_id, destination, target).await
            }
            other => other,
        }
    })
    .await
}

#[async_trait]
impl ResourceKind for Route {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (table, destination, tgt) = props!(
            cx,
            Route {
                table,
                destination,
                target
            }
        );
        let table_id = cx.dep_id(table)?;
        let target = target(cx, tgt)?;
        Ok(read_table(aws, table_id)
            .await?
            .filter(|rt| has_route(rt, destination, &target))
            .map(|_| outputs(table_id, destination)))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (table, destination, tgt) = props!(
            cx,
            Route {
                table,
                destination,
                target
            }
        );
        let table_id = cx.dep_id(table)?;
        put_route(aws, table_id, destination, &target(cx, tgt)?).await?;
        Ok(outputs(table_id, destination))
    }

    /// Repairs drift: a route deleted by hand, or pointing elsewhere, is put back.
    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, _outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (table, destination, tgt) = props!(
            cx,
            Route {
                table,
                destination,
                target
            }
        );
        let table_id = cx.dep_id(table)?;
        let target = target(cx, tgt)?;
        // Right after this run created the table, its id may not be visible to reads yet
        // (EC2 eventual consistency): a NotFound then is retried briefly, not believed.
        let rt = ec2::retry_not_found("reading the route table", || async {
            read_table(aws, table_id)
                .await?
                .ok_or_else(|| ResourceError::new(ErrorClass::NotFound, format!("route table {table_id} is gone")))
        })
        .await?;
        if !has_route(&rt, destination, &target) {
            put_route(aws, table_id, destination, &target).await?;
        }
        Ok(outputs(table_id, destination))
    }

    async fn inspect(&self, aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
        let Some(table) = read_table(aws, cx.outputs.require("table_id")?).await? else {
            return Ok(Inspection::missing());
        };
        let destination = cx.outputs.get("destination").unwrap_or("0.0.0.0/0");
        let Some(route) = table
            .routes()
            .iter()
            .find(|r| r.destination_cidr_block() == Some(destination))
        else {
            return Ok(Inspection::missing());
        };
        let mut i = Inspection::available();
        if route.state() != Some(&RouteState::Active) {
            i.check_opt("state", "active", route.state().map(|s| s.as_str()));
        }
        if let Some(crate::core::spec::Props::Route { target: want, .. }) = cx.spec.map(|s| &s.props) {
            let (key, have) = match want {
                RouteTarget::InternetGateway(k) => (k, route.gateway_id()),
                RouteTarget::NatGateway(k) => (k, route.nat_gateway_id()),
            };
            i.check_opt(
                "target",
                cx.id_of(key).unwrap_or(key),
                have.or(route.gateway_id()).or(route.nat_gateway_id()),
            );
        }
        Ok(i)
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::Route { target, .. } => desired_settings(target, deps),
            _ => Settings::new(),
        }
    }

    /// A route deleted by hand (or its table gone) is missing: `up` puts it back.
    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let (table_id, destination) = (outputs.require("table_id")?, outputs.require("destination")?);
        Ok(
            match read_table(aws, table_id)
                .await?
                .and_then(|rt| live_target(&rt, destination))
            {
                Some(t) => Observed::Present(settings([("target", t)])),
                None => Observed::Missing,
            },
        )
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let id = cx.outputs.id()?;
        let (table_id, destination) = match (cx.outputs.get("table_id"), cx.outputs.get("destination")) {
            (Some(t), Some(d)) => (t, d),
            // A record that kept only the id: it is `<rtb-id>/<cidr>`.
            _ => id.split_once('/').ok_or_else(|| {
                ResourceError::new(
                    ErrorClass::Invalid,
                    format!("route id `{id}` is not `<route-table-id>/<destination>`"),
                )
            })?,
        };
        // InvalidRoute.NotFound and a gone table are NotFound: already deleted.
        ec2::delete_retrying(Kind::Route, &format!("deleting route {id}"), || async {
            aws.clients
                .ec2
                .delete_route()
                .route_table_id(table_id)
                .destination_cidr_block(destination)
                .send()
                .await
                .map(|_| ())
                .map_err(err("deleting the route"))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diff::diff;

    fn table(nat: &str, state: RouteState) -> t::RouteTable {
        t::RouteTable::builder()
            .routes(
                t::Route::builder()
                    .destination_cidr_block("0.0.0.0/0")
                    .nat_gateway_id(nat)
                    .state(state)
                    .build(),
            )
            .build()
    }

    #[test]
    fn a_route_moved_to_another_nat_is_an_update_and_a_blackhole_shows() {
        let deps: BTreeMap<String, Outputs> = [("nat-a".to_string(), Outputs::new().with("id", "nat-0a"))].into();
        let want = desired_settings(&RouteTarget::NatGateway("nat-a".into()), &deps);
        let live = |nat, st| settings([("target", live_target(&table(nat, st), "0.0.0.0/0").unwrap())]);
        assert!(diff(ATTRS, &want, &live("nat-0a", RouteState::Active), None).is_empty());
        let c = diff(ATTRS, &want, &live("nat-0b", RouteState::Blackhole), None);
        assert_eq!(
            (c[0].old.as_str(), c[0].new.as_str(), c[0].action),
            (
                "NAT gateway nat-0b (blackhole)",
                "NAT gateway nat-0a",
                ChangeAction::Update
            )
        );
        assert_eq!(live_target(&table("nat-0a", RouteState::Active), "10.0.0.0/16"), None);
    }
}
