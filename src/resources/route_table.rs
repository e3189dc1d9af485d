//! A route table and its subnet associations. A subnet has at most one explicit
//! association, so a subnet already associated elsewhere is moved here with
//! ReplaceRouteTableAssociation rather than associated a second time.
//!
//! Day 2: `read` returns the subnets explicitly associated with the table; `update` moves the
//! config's subnets back onto it and disassociates any other subnet (which then follows the
//! VPC's main route table). Its routes are nodes of their own (route.rs); a route made by
//! hand (any other route made with CreateRoute, apart from a VPC endpoint's) is drift that
//! `update` deletes, as unknown security group rules are.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{self as t, ResourceType, RouteOrigin, RouteTableAssociationStateCode};

use super::{Aws, ResourceKind, ec2, props};
use crate::aws::{err, tags};
use crate::core::diff::{self, AttrSpec, Change, ChangeAction, Settings, settings};
use crate::core::inspect::{InspectCtx, Inspection};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, NodeSpec, Props};

pub struct RouteTable;

/// The subnets follow the blueprint (no config field drives them directly: `nat_per_az`
/// makes other tables): a difference is drift, repaired in place.
pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::with(
        "subnets",
        ChangeAction::Update,
        "the config's subnets are moved back onto the table; another subnet goes back to the VPC's main table",
        &[],
    ),
    AttrSpec::with(
        "other_routes",
        ChangeAction::Update,
        "a route made by hand is deleted (the config's own routes and a VPC endpoint's are kept)",
        &[],
    ),
];

/// Desired settings (pure): the subnets' ids from `deps`, and no route made by hand.
pub fn desired_settings(subnets: &[String], deps: &BTreeMap<String, Outputs>) -> Settings {
    settings([
        (
            "subnets",
            diff::list(subnets.iter().map(|k| super::dep_output(deps, k, "id"))),
        ),
        ("other_routes", diff::list(Vec::<String>::new())),
    ])
}

/// Where a route sends traffic to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Destination {
    Ipv4(String),
    Ipv6(String),
    PrefixList(String),
}

/// A route of the table that neither the config nor a VPC endpoint made.
#[derive(Clone, Debug, PartialEq, Eq)]
struct StrayRoute {
    destination: Destination,
    /// The target's id, as the console names it.
    to: String,
}

impl std::fmt::Display for StrayRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = match &self.destination {
            Destination::Ipv4(c) | Destination::Ipv6(c) | Destination::PrefixList(c) => c,
        };
        write!(f, "{d} -> {}", self.to)
    }
}

fn route_target(r: &t::Route) -> String {
    [
        r.gateway_id(),
        r.nat_gateway_id(),
        r.transit_gateway_id(),
        r.vpc_peering_connection_id(),
        r.network_interface_id(),
        r.instance_id(),
        r.egress_only_internet_gateway_id(),
        r.local_gateway_id(),
        r.carrier_gateway_id(),
        r.core_network_arn(),
    ]
    .into_iter()
    .flatten()
    .next()
    .unwrap_or("?")
    .to_string()
}

/// The routes made with CreateRoute whose destination is not one of the config's `wanted`
/// ones and whose target is not a VPC endpoint (a gateway endpoint's prefix-list routes
/// belong to it: vpc_endpoint.rs). The local route (CreateRouteTable) and propagated ones
/// (EnableVgwRoutePropagation) are never strays.
fn stray_routes(table: &t::RouteTable, wanted: &[String]) -> Vec<StrayRoute> {
    table
        .routes()
        .iter()
        .filter(|r| r.origin() == Some(&RouteOrigin::CreateRoute))
        .filter(|r| !r.gateway_id().is_some_and(|g| g.starts_with("vpce-")))
        .filter_map(|r| {
            let destination = if let Some(c) = r.destination_cidr_block() {
                Destination::Ipv4(c.to_string())
            } else if let Some(c) = r.destination_ipv6_cidr_block() {
                Destination::Ipv6(c.to_string())
            } else {
                Destination::PrefixList(r.destination_prefix_list_id()?.to_string())
            };
            let wanted = match &destination {
                Destination::Ipv4(c) | Destination::Ipv6(c) => wanted.iter().any(|w| w == c),
                Destination::PrefixList(_) => false,
            };
            (!wanted).then(|| StrayRoute {
                destination,
                to: route_target(r),
            })
        })
        .collect()
}

/// The subnets with a live explicit association to the table (its main association, if
/// it were the VPC's main table, names no subnet).
fn associated_subnets(table: &t::RouteTable) -> Vec<String> {
    table
        .associations()
        .iter()
        .filter(|a| is_live(a) && a.main() != Some(true))
        .filter_map(|a| a.subnet_id().map(String::from))
        .collect()
}

/// Live settings (pure); `routes` are the destinations of the config's own routes.
fn live_settings(table: &t::RouteTable, routes: &[String]) -> Settings {
    settings([
        ("subnets", diff::list(associated_subnets(table))),
        (
            "other_routes",
            diff::list(stray_routes(table, routes).iter().map(ToString::to_string)),
        ),
    ])
}

/// Associations of subnets the config does not name (made by hand).
fn strays(table: &t::RouteTable, wanted: &[String]) -> Vec<String> {
    table
        .associations()
        .iter()
        .filter(|a| is_live(a) && a.main() != Some(true))
        .filter(|a| a.subnet_id().is_some_and(|s| !wanted.iter().any(|w| w == s)))
        .filter_map(|a| a.route_table_association_id().map(String::from))
        .collect()
}

/// One explicit subnet association, as DescribeRouteTables reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Association {
    subnet_id: String,
    association_id: String,
    table_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum AssocAction {
    Associate {
        subnet_id: String,
    },
    /// Move the subnet's existing association to our table.
    Replace {
        association_id: String,
    },
}

/// What to do so that each desired subnet is associated with `table_id`.
fn plan_associations(table_id: &str, subnets: &[String], current: &[Association]) -> Vec<AssocAction> {
    subnets
        .iter()
        .filter_map(|subnet| match current.iter().find(|a| &a.subnet_id == subnet) {
            Some(a) if a.table_id == table_id => None,
            Some(a) => Some(AssocAction::Replace {
                association_id: a.association_id.clone(),
            }),
            None => Some(AssocAction::Associate {
                subnet_id: subnet.clone(),
            }),
        })
        .collect()
}

fn is_live(a: &t::RouteTableAssociation) -> bool {
    !matches!(
        a.association_state().and_then(|s| s.state()),
        Some(
            RouteTableAssociationStateCode::Disassociated
                | RouteTableAssociationStateCode::Disassociating
                | RouteTableAssociationStateCode::Failed
        )
    )
}

/// The live explicit associations of these subnets, with any route table of the VPC. The
/// VPC is the filter, and the subnets are picked here: a multi-value `association.subnet-id`
/// filter matches on AWS when any value does, but some implementations (moto) only when the
/// table's subnets are a subset or superset of the values, which hides tables.
async fn associations_of(aws: &Aws, vpc_id: &str, subnets: &[String]) -> Result<Vec<Association>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_route_tables()
        .filters(ec2::filter("vpc-id", [vpc_id]))
        .send()
        .await
        .map_err(err("reading the subnets' route table associations"))?;
    Ok(out
        .route_tables()
        .iter()
        .flat_map(|rt| rt.associations())
        .filter(|a| is_live(a) && a.subnet_id().is_some_and(|s| subnets.iter().any(|x| x == s)))
        .filter_map(|a| {
            Some(Association {
                subnet_id: a.subnet_id()?.to_string(),
                association_id: a.route_table_association_id()?.to_string(),
                table_id: a.route_table_id()?.to_string(),
            })
        })
        .collect())
}

async fn apply(aws: &Aws, table_id: &str, action: &AssocAction) -> Result<(), ResourceError> {
    let ec2 = &aws.clients.ec2;
    // Right after create, the table may not be visible to the association call yet.
    ec2::retry_not_found("associating the route table", || async {
        match action {
            AssocAction::Associate { subnet_id } => ec2
                .associate_route_table()
                .route_table_id(table_id)
                .subnet_id(subnet_id)
                .send()
                .await
                .map(|_| ())
                .map_err(err("associating the route table with a subnet")),
            AssocAction::Replace { association_id } => ec2
                .replace_route_table_association()
                .association_id(association_id)
                .route_table_id(table_id)
                .send()
                .await
                .map(|_| ())
                .map_err(err("moving a subnet's route table association")),
        }
    })
    .await
}

async fn describe(aws: &Aws, id: &str) -> Result<Option<t::RouteTable>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_route_tables()
        .route_table_ids(id)
        .send()
        .await
        .map_err(err("describing the route table"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.route_tables().first().cloned()))
}

/// Delete a route made by hand; one already gone is fine.
async fn delete_stray(aws: &Aws, table_id: &str, route: &StrayRoute) -> Result<(), ResourceError> {
    let b = aws.clients.ec2.delete_route().route_table_id(table_id);
    let b = match &route.destination {
        Destination::Ipv4(c) => b.destination_cidr_block(c),
        Destination::Ipv6(c) => b.destination_ipv6_cidr_block(c),
        Destination::PrefixList(p) => b.destination_prefix_list_id(p),
    };
    match b.send().await.map(|_| ()).map_err(err("deleting a route made by hand")) {
        Err(e) if e.is(ErrorClass::NotFound) => Ok(()),
        other => other,
    }
}

async fn disassociate(aws: &Aws, association_id: &str) -> Result<(), ResourceError> {
    let r = aws
        .clients
        .ec2
        .disassociate_route_table()
        .association_id(association_id)
        .send()
        .await
        .map(|_| ())
        .map_err(err("removing a route table association"));
    match r {
        Err(e) if e.is(ErrorClass::NotFound) => Ok(()),
        other => other,
    }
}

#[async_trait]
impl ResourceKind for RouteTable {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let out = aws
            .clients
            .ec2
            .describe_route_tables()
            .set_filters(Some(tags::ec2_filters(&aws.env.deployment, &cx.spec.key)))
            .send()
            .await
            .map_err(err("looking up the route table by tag"))?;
        Ok(out
            .route_tables()
            .iter()
            .find(|r| tags::ec2_is_ours(r.tags(), &aws.env.deployment, &cx.spec.key))
            .and_then(|r| {
                Some(
                    Outputs::new()
                        .with("id", r.route_table_id()?)
                        .with("vpc_id", r.vpc_id().unwrap_or_default()),
                )
            }))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (vpc,) = props!(cx, RouteTable { vpc });
        let vpc_id = cx.dep_id(vpc)?;
        let out = aws
            .clients
            .ec2
            .create_route_table()
            .vpc_id(vpc_id)
            .client_token(cx.token)
            .tag_specifications(tags::ec2_spec(
                ResourceType::RouteTable,
                &aws.env.deployment,
                &cx.spec.key,
            ))
            .send()
            .await
            .map_err(err("creating the route table"))?;
        let id = out.route_table().and_then(|r| r.route_table_id()).unwrap_or_default();
        Ok(Outputs::new().with("id", id).with("vpc_id", vpc_id))
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, mut outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (vpc, subnets) = props!(cx, RouteTable { vpc, subnets });
        let id = outputs.id()?.to_string();
        let vpc_id = cx.dep_id(vpc)?;
        let subnet_ids = subnets
            .iter()
            .map(|k| cx.dep_id(k).map(String::from))
            .collect::<Result<Vec<_>, _>>()?;
        let current = associations_of(aws, vpc_id, &subnet_ids).await?;
        for action in plan_associations(&id, &subnet_ids, &current) {
            match apply(aws, &id, &action).await {
                // Someone associated the subnet between our read and our call: move it.
                Err(e) if ec2::has_code(&e, "Resource.AlreadyAssociated") => {
                    let now = associations_of(aws, vpc_id, &subnet_ids).await?;
                    for again in plan_associations(&id, &subnet_ids, &now) {
                        apply(aws, &id, &again).await?;
                    }
                }
                other => other?,
            }
        }
        outputs.set("vpc_id", vpc_id);
        Ok(outputs)
    }

    async fn inspect(&self, aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
        let Some(table) = describe(aws, cx.outputs.id()?).await? else {
            return Ok(Inspection::missing());
        };
        let mut i = Inspection::available();
        if let Some(crate::core::spec::Props::RouteTable { subnets, routes, .. }) = cx.spec.map(|s| &s.props) {
            for route in stray_routes(&table, routes) {
                i.drift("route", "absent", format!("{route} (made by hand, not in the config)"));
            }
            let associated: Vec<&str> = table
                .associations()
                .iter()
                .filter(|a| is_live(a))
                .filter_map(|a| a.subnet_id())
                .collect();
            for key in subnets {
                let id = cx.id_of(key).unwrap_or(key);
                if !associated.contains(&id) {
                    i.drift("association", id, "absent (the subnet uses another route table)");
                }
            }
        }
        Ok(i)
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::RouteTable { subnets, .. } => desired_settings(subnets, deps),
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let (routes,) = props!(cx, RouteTable { routes });
        Ok(match describe(aws, outputs.id()?).await? {
            Some(table) => Observed::Present(live_settings(&table, routes)),
            None => Observed::Missing,
        })
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &NodeCtx<'_>,
        outputs: Outputs,
        _changes: &[Change],
    ) -> Result<Outputs, ResourceError> {
        // The config's subnets first (as on create), then the strays: associations and
        // routes made by hand.
        let outputs = self.converge(aws, cx, outputs).await?;
        let (subnets, routes) = props!(cx, RouteTable { subnets, routes });
        let wanted = subnets
            .iter()
            .map(|k| cx.dep_id(k).map(String::from))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(table) = describe(aws, outputs.id()?).await? {
            for assoc in strays(&table, &wanted) {
                disassociate(aws, &assoc).await?;
            }
            for route in stray_routes(&table, routes) {
                delete_stray(aws, outputs.id()?, &route).await?;
            }
        }
        Ok(outputs)
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let id = cx.outputs.id()?;
        let Some(rt) = describe(aws, id).await? else {
            return Ok(());
        };
        // A table with subnet associations cannot be deleted; the main association (the
        // VPC's default) is never ours to remove.
        for a in rt
            .associations()
            .iter()
            .filter(|a| a.main() != Some(true) && is_live(a))
        {
            if let Some(assoc) = a.route_table_association_id() {
                disassociate(aws, assoc).await?;
            }
        }
        ec2::delete_retrying(Kind::RouteTable, &format!("deleting route table {id}"), || async {
            aws.clients
                .ec2
                .delete_route_table()
                .route_table_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(err("deleting the route table"))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(assocs: &[(&str, &str, bool)]) -> t::RouteTable {
        t::RouteTable::builder()
            .route_table_id("rtb-1")
            .set_associations(Some(
                assocs
                    .iter()
                    .map(|(subnet, id, main)| {
                        let b = t::RouteTableAssociation::builder()
                            .route_table_association_id(*id)
                            .route_table_id("rtb-1")
                            .main(*main);
                        if subnet.is_empty() { b } else { b.subnet_id(*subnet) }.build()
                    })
                    .collect(),
            ))
            .build()
    }

    #[test]
    fn a_subnet_lost_or_added_by_hand_is_an_update_and_strays_are_named() {
        let deps: BTreeMap<String, Outputs> = [("subnet-app-a", "subnet-1"), ("subnet-db-a", "subnet-2")]
            .into_iter()
            .map(|(k, id)| (k.to_string(), Outputs::new().with("id", id)))
            .collect();
        let want = desired_settings(&["subnet-app-a".into(), "subnet-db-a".into()], &deps);
        let converged = table(&[("subnet-2", "rtbassoc-2", false), ("subnet-1", "rtbassoc-1", false)]);
        assert!(diff::diff(ATTRS, &want, &live_settings(&converged, &[]), None).is_empty());
        let drifted = table(&[
            ("subnet-1", "rtbassoc-1", false),
            ("subnet-9", "rtbassoc-9", false),
            ("", "rtbassoc-main", true),
        ]);
        let c = diff::diff(ATTRS, &want, &live_settings(&drifted, &[]), None);
        assert_eq!(
            (
                c[0].attribute.as_str(),
                c[0].old.as_str(),
                c[0].new.as_str(),
                c[0].action
            ),
            (
                "subnets",
                "subnet-1, subnet-9",
                "subnet-1, subnet-2",
                ChangeAction::Update
            )
        );
        assert_eq!(
            strays(&drifted, &["subnet-1".into(), "subnet-2".into()]),
            vec!["rtbassoc-9"]
        );
    }

    fn route(
        destination: &str,
        origin: RouteOrigin,
        to: impl FnOnce(t::builders::RouteBuilder) -> t::builders::RouteBuilder,
    ) -> t::Route {
        let b = t::Route::builder().origin(origin);
        let b = if destination.starts_with("pl-") {
            b.destination_prefix_list_id(destination)
        } else if destination.contains(':') {
            b.destination_ipv6_cidr_block(destination)
        } else {
            b.destination_cidr_block(destination)
        };
        to(b).build()
    }

    #[test]
    fn only_routes_made_by_hand_are_strays_and_a_plan_names_them() {
        let live = t::RouteTable::builder()
            .route_table_id("rtb-1")
            .routes(route("10.0.0.0/16", RouteOrigin::CreateRouteTable, |b| {
                b.gateway_id("local")
            }))
            .routes(route("0.0.0.0/0", RouteOrigin::CreateRoute, |b| {
                b.nat_gateway_id("nat-1")
            }))
            .routes(route("pl-6ca54005", RouteOrigin::CreateRoute, |b| {
                b.gateway_id("vpce-1")
            }))
            .routes(route("192.168.0.0/16", RouteOrigin::EnableVgwRoutePropagation, |b| {
                b.gateway_id("vgw-1")
            }))
            .routes(route("10.50.0.0/16", RouteOrigin::CreateRoute, |b| {
                b.vpc_peering_connection_id("pcx-1")
            }))
            .routes(route("::/0", RouteOrigin::CreateRoute, |b| {
                b.egress_only_internet_gateway_id("eigw-1")
            }))
            .routes(route("pl-0abc", RouteOrigin::CreateRoute, |b| {
                b.transit_gateway_id("tgw-1")
            }))
            .build();
        let wanted = vec!["0.0.0.0/0".to_string()];
        let strays = stray_routes(&live, &wanted);
        assert_eq!(
            strays.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["10.50.0.0/16 -> pcx-1", "::/0 -> eigw-1", "pl-0abc -> tgw-1"]
        );
        assert_eq!(strays[1].destination, Destination::Ipv6("::/0".into()));
        assert_eq!(strays[2].destination, Destination::PrefixList("pl-0abc".into()));

        let want = desired_settings(&[], &BTreeMap::new());
        let c = diff::diff(ATTRS, &want, &live_settings(&live, &wanted), None);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(
            (
                c[0].attribute.as_str(),
                c[0].old.as_str(),
                c[0].new.as_str(),
                c[0].action
            ),
            (
                "other_routes",
                "10.50.0.0/16 -> pcx-1, ::/0 -> eigw-1, pl-0abc -> tgw-1",
                "-",
                ChangeAction::Update
            )
        );
        // The config's own default route is the route node's business, whatever its target.
        let only_ours = t::RouteTable::builder()
            .routes(route("0.0.0.0/0", RouteOrigin::CreateRoute, |b| b.gateway_id("igw-9")))
            .build();
        assert!(stray_routes(&only_ours, &wanted).is_empty());
        assert!(diff::diff(ATTRS, &want, &live_settings(&only_ours, &wanted), None).is_empty());
    }

    fn assoc(subnet: &str, id: &str, table: &str) -> Association {
        Association {
            subnet_id: subnet.into(),
            association_id: id.into(),
            table_id: table.into(),
        }
    }

    #[test]
    fn associates_new_subnets_moves_foreign_ones_and_keeps_ours() {
        let subnets = vec!["subnet-a".to_string(), "subnet-b".to_string(), "subnet-c".to_string()];
        let current = vec![
            assoc("subnet-a", "rtbassoc-1", "rtb-ours"),
            assoc("subnet-b", "rtbassoc-2", "rtb-other"),
        ];
        assert_eq!(
            plan_associations("rtb-ours", &subnets, &current),
            vec![
                AssocAction::Replace {
                    association_id: "rtbassoc-2".into()
                },
                AssocAction::Associate {
                    subnet_id: "subnet-c".into()
                },
            ]
        );
    }

    #[test]
    fn a_converged_table_needs_nothing() {
        let subnets = vec!["subnet-a".to_string()];
        let current = vec![assoc("subnet-a", "rtbassoc-1", "rtb-ours")];
        assert!(plan_associations("rtb-ours", &subnets, &current).is_empty());
    }
}
