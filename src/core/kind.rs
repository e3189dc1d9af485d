//! What a resource kind is, in one place.

#[cfg(test)]
mod tests {
    use crate::core::spec::{Kind, NodeSpec, Props};
    use crate::core::{bench_model, latency, phase};

    /// One line per kind: every value the kind's tables give, as they were before the tables
    /// became one (`KIND_TABLE` pins them).
    fn table() -> String {
        let mut out = String::new();
        for &k in Kind::ALL {
            let node = NodeSpec {
                key: k.as_str().into(),
                kind: k,
                deps: vec![],
                props: Props::Recorded,
            };
            out.push_str(&format!(
                "{} serde={} service={} id_prefix={:?} container={:?} deleted_with_container={} tagged={} \
                 phase={} vendor={:?} tier={:?} create={:?} delete={:?} create_transition={:?} \
                 delete_transition={:?}/{:?}\n",
                k.as_str(),
                serde_json::to_string(&k).unwrap(),
                k.service(),
                k.id_prefix(),
                k.container(),
                k.deleted_with_container(),
                k.is_tagged(),
                phase::phase_of(k),
                bench_model::vendor_stack(k),
                bench_model::tier(&node),
                latency::create_entries(k),
                latency::delete_entries(k),
                latency::create_transition(&node),
                latency::delete_transition(&node, false),
                latency::delete_transition(&node, true),
            ));
        }
        out
    }

    /// The props-dependent refinements, node by node of the full architecture.
    fn nodes() -> String {
        let cfg = crate::core::config::Config {
            ami: Some("ami-0123456789abcdef0".into()),
            ..Default::default()
        };
        let nodes = crate::core::spec::build_all(&crate::core::spec::SpecInput {
            config: &cfg,
            region: "eu-west-1",
            azs: ["eu-west-1a".into(), "eu-west-1b".into()],
        });
        let mut out = String::new();
        for n in &nodes {
            out.push_str(&format!(
                "{} tier={:?} create_transition={:?} delete_transition={:?}/{:?}\n",
                n.key,
                bench_model::tier(n),
                latency::create_transition(n),
                latency::delete_transition(n, false),
                latency::delete_transition(n, true),
            ));
        }
        out
    }

    /// What every kind's tables gave before they became one table, for every kind and for
    /// every node of the full architecture (the props-dependent refinements). A change here
    /// is a change of behaviour: make it on purpose, and update `kind_pins.txt` with it.
    #[test]
    fn every_kind_keeps_what_its_tables_gave() {
        let got = format!("{}\n{}", table(), nodes());
        let want = include_str!("kind_pins.txt");
        for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            assert_eq!(g, w, "line {}", i + 1);
        }
        assert_eq!(got, want);
    }

    /// `Kind::ALL` lists every variant once, in declaration order. A new variant fails to
    /// compile here (the match has no wildcard) until it is listed, and then fails the
    /// assertions until `Kind::ALL` has it.
    #[test]
    fn all_lists_every_variant() {
        macro_rules! every {
            ($($v:ident),* $(,)?) => {{
                let exhaustive = |k: Kind| match k {
                    $(Kind::$v => (),)*
                };
                let listed = [$(Kind::$v),*];
                listed.iter().for_each(|&k| exhaustive(k));
                listed
            }};
        }
        let listed = every!(
            Vpc,
            InternetGateway,
            Subnet,
            ElasticIp,
            NatGateway,
            RouteTable,
            Route,
            NetworkAcl,
            SecurityGroup,
            VpcEndpoint,
            Bucket,
            FileSystem,
            MountTarget,
            AccessPoint,
            DbSubnetGroup,
            DbParameterGroup,
            DbInstance,
            DbEndpoint,
            DbStandby,
            Secret,
            IamRole,
            LogGroup,
            LambdaFunction,
            LambdaPermission,
            BucketNotification,
            InstanceProfile,
            LaunchTemplate,
            TargetGroup,
            LoadBalancer,
            Listener,
            AutoScalingGroup,
            LifecycleHook,
            ScalingPolicy,
            Alarm,
            DnsRecord,
            DashboardCheck,
        );
        for k in listed {
            assert!(Kind::ALL.contains(&k), "Kind::ALL lacks {k:?}");
        }
        assert_eq!(Kind::ALL.len(), listed.len());
        assert!(
            Kind::ALL.windows(2).all(|w| w[0] < w[1]),
            "Kind::ALL in declaration order, once each"
        );
    }
}
