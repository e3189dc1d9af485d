//! Pure pieces of the modelled benchmark (`benches/modelled.rs`): the vendor's CloudFormation
//! schedule under our latency model, the tier of a node, the timeline of a simulated run,
//! the headline lines scripts read, and the Gantt chart of a run as SVG text.
//!
//! The vendor schedule, and what it assumes:
//! - the vendor's template runs nested stacks in the order
//!   Config -> Network -> (RDS || EFS -> IAM -> Lambda) -> EC2, and a stack starts only when
//!   the stacks before it are complete (CloudFormation `DependsOn` between nested stacks);
//! - inside a stack, resources run in parallel, limited only by the dependencies between
//!   resources of that same stack; a stack takes its internal longest chain;
//! - each of our nodes is mapped onto the stack that would hold the equivalent vendor resource
//!   (by kind, see `vendor_stack`); our edges that cross stacks are ignored, since the stack
//!   order already serialises them. The result is that the vendor waits for things pi-deploy does
//!   not: EC2 after RDS (its launch configuration embeds the DB endpoint), EFS/IAM/Lambda after
//!   the whole Network stack (NAT gateway and interface endpoints included), and so on;
//! - every node weighs the same as in our model (same kinds, same medians or slow figures). This
//!   flatters the vendor: its own defects (user data that reboots, health checks of 65 s x 4, the
//!   instance boot that cannot overlap RDS because EC2 starts after it, AWS's 20-45 min Lambda
//!   ENI reaper on delete) are NOT added, so the vendor figure is a lower bound;
//! - destroy: CloudFormation deletes the stacks in reverse order, EC2 -> (RDS || Lambda -> IAM ->
//!   EFS) -> Network -> Config. The makespan is the same sum of the same terms (with delete
//!   weights), and a stack's internal longest chain does not depend on the direction it is walked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::graph::Graph;
use super::spec::{Kind, NodeSpec, Props};

/// The vendor's nested stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VendorStack {
    Config,
    Network,
    Rds,
    Efs,
    Iam,
    Lambda,
    Ec2,
}

impl VendorStack {
    pub const ALL: [VendorStack; 7] = [
        VendorStack::Config,
        VendorStack::Network,
        VendorStack::Rds,
        VendorStack::Efs,
        VendorStack::Iam,
        VendorStack::Lambda,
        VendorStack::Ec2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            VendorStack::Config => "Config",
            VendorStack::Network => "Network",
            VendorStack::Rds => "RDS",
            VendorStack::Efs => "EFS",
            VendorStack::Iam => "IAM",
            VendorStack::Lambda => "Lambda",
            VendorStack::Ec2 => "EC2",
        }
    }
}

/// The vendor stack that holds the equivalent of a node of this kind. From `Kind::info`, which
/// has no wildcard arm: a new kind must be placed explicitly.
pub fn vendor_stack(kind: Kind) -> VendorStack {
    kind.info().vendor_stack
}

/// Each stack's duration: the longest chain among its own nodes, following only the edges
/// inside the stack. Stacks without nodes take zero.
pub fn stack_durations(graph: &Graph, weight: impl Fn(&NodeSpec) -> f64) -> BTreeMap<VendorStack, f64> {
    let stack: Vec<VendorStack> = graph.nodes().iter().map(|n| vendor_stack(n.kind)).collect();
    let mut finish = vec![0.0f64; graph.len()];
    let mut out: BTreeMap<VendorStack, f64> = VendorStack::ALL.iter().map(|&s| (s, 0.0)).collect();
    for i in graph.topo_order() {
        let before = graph
            .deps_of(i)
            .iter()
            .filter(|&&d| stack[d] == stack[i])
            .map(|&d| finish[d])
            .fold(0.0, f64::max);
        finish[i] = before + weight(graph.node(i));
        let total = out.entry(stack[i]).or_default();
        *total = total.max(finish[i]);
    }
    out
}

/// Config + Network + max(RDS, EFS + IAM + Lambda) + EC2 (the same sum for destroy, whose
/// order is the reverse).
pub fn vendor_makespan(d: &BTreeMap<VendorStack, f64>) -> f64 {
    let s = |k: VendorStack| d.get(&k).copied().unwrap_or(0.0);
    let side = s(VendorStack::Efs) + s(VendorStack::Iam) + s(VendorStack::Lambda);
    s(VendorStack::Config) + s(VendorStack::Network) + s(VendorStack::Rds).max(side) + s(VendorStack::Ec2)
}

#[derive(Clone, Debug, PartialEq)]
pub struct VendorSchedule {
    pub stacks: BTreeMap<VendorStack, f64>,
    pub makespan: f64,
}

pub fn vendor_schedule(graph: &Graph, weight: impl Fn(&NodeSpec) -> f64) -> VendorSchedule {
    let stacks = stack_durations(graph, weight);
    let makespan = vendor_makespan(&stacks);
    VendorSchedule { stacks, makespan }
}

impl VendorSchedule {
    /// `Config 1 + Network 105 + max(RDS 963, EFS 82 + IAM 12 + Lambda 72) + EC2 160`.
    pub fn describe(&self) -> String {
        let s = |k: VendorStack| format!("{} {:.0}", k.name(), self.stacks.get(&k).copied().unwrap_or(0.0));
        format!(
            "{} + {} + max({}, {} + {} + {}) + {}",
            s(VendorStack::Config),
            s(VendorStack::Network),
            s(VendorStack::Rds),
            s(VendorStack::Efs),
            s(VendorStack::Iam),
            s(VendorStack::Lambda),
            s(VendorStack::Ec2)
        )
    }
}

/// The four tiers of the architecture (the builder functions of `spec`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Network,
    Data,
    Sideload,
    Compute,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Network, Tier::Data, Tier::Sideload, Tier::Compute];

    pub fn name(self) -> &'static str {
        match self {
            Tier::Network => "network",
            Tier::Data => "data",
            Tier::Sideload => "side-loading",
            Tier::Compute => "compute and edge",
        }
    }

    pub fn colour(self) -> &'static str {
        match self {
            Tier::Network => "#4e79a7",
            Tier::Data => "#f28e2b",
            Tier::Sideload => "#59a14f",
            Tier::Compute => "#b07aa1",
        }
    }
}

/// The tier a node belongs to; roles belong to the tier of the service that assumes them.
pub fn tier(node: &NodeSpec) -> Tier {
    match &node.props {
        Props::IamRole { service, .. } if node.kind == Kind::IamRole && service.starts_with("lambda.") => {
            Tier::Sideload
        }
        _ => node.kind.info().tier,
    }
}

/// One resource's interval in a run, seconds from the start.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub key: String,
    pub tier: Tier,
    pub start_s: f64,
    pub end_s: f64,
    pub critical: bool,
}

/// One bar per key from (key, start, end) spans of its operations: first start to last end,
/// sorted by start, then end, then key.
pub fn bars(
    graph: &Graph,
    spans: impl IntoIterator<Item = (String, f64, f64)>,
    critical: &BTreeSet<String>,
) -> Vec<Bar> {
    let mut by_key: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (key, start, end) in spans {
        let e = by_key.entry(key).or_insert((start, end));
        e.0 = e.0.min(start);
        e.1 = e.1.max(end);
    }
    let mut out: Vec<Bar> = by_key
        .into_iter()
        .filter_map(|(key, (start_s, end_s))| {
            let node = graph.get(&key)?;
            Some(Bar {
                tier: tier(node),
                critical: critical.contains(&key),
                key,
                start_s,
                end_s,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        a.start_s
            .total_cmp(&b.start_s)
            .then(a.end_s.total_cmp(&b.end_s))
            .then(a.key.cmp(&b.key))
    });
    out
}

/// The line scripts read, e.g. `up makespan / longest chain = 1.03 (median latencies)`.
pub fn headline(op: &str, against: &str, ratio: f64, figure: &str) -> String {
    format!("{op} makespan / {against} = {ratio:.2} ({figure} latencies)")
}

/// Minutes between axis ticks: at most about 12 ticks over the run.
fn tick_minutes(total_s: f64) -> f64 {
    let minutes = total_s / 60.0;
    [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0]
        .into_iter()
        .find(|&t| minutes / t <= 12.0)
        .unwrap_or(120.0)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A Gantt chart: one row per bar (in the given order), coloured by tier, the critical chain
/// outlined in red with a bold label, and a time axis in minutes.
pub fn gantt_svg(bars: &[Bar], title: &str) -> String {
    gantt_svg_marked(bars, title, None)
}

/// `gantt_svg` with a moment marked by a vertical line and its label (the dashboard's
/// usable moment on the usable-early path), seconds from the start.
pub fn gantt_svg_marked(bars: &[Bar], title: &str, mark: Option<(f64, &str)>) -> String {
    const LABEL_W: f64 = 190.0;
    const CHART_W: f64 = 860.0;
    const ROW_H: f64 = 14.0;
    const TOP: f64 = 62.0;
    const RIGHT: f64 = 60.0;
    let total = bars.iter().map(|b| b.end_s).fold(1.0, f64::max);
    let step_s = tick_minutes(total) * 60.0;
    let axis_end = (total / step_s).ceil() * step_s;
    let x = |t: f64| LABEL_W + t / axis_end * CHART_W;
    let height = TOP + ROW_H * bars.len() as f64 + 40.0;
    let width = LABEL_W + CHART_W + RIGHT;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="10">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    // Legend: tiers, then the critical chain.
    let mut lx = 10.0;
    for t in Tier::ALL {
        let _ = writeln!(
            s,
            r#"<rect x="{lx:.0}" y="28" width="12" height="10" fill="{}"/>"#,
            t.colour()
        );
        let _ = writeln!(s, r#"<text x="{:.0}" y="37">{}</text>"#, lx + 16.0, t.name());
        lx += 30.0 + 6.5 * t.name().len() as f64;
    }
    let _ = writeln!(
        s,
        r##"<rect x="{lx:.0}" y="28" width="12" height="10" fill="#dddddd" stroke="#d62728" stroke-width="2"/><text x="{:.0}" y="37" fill="#d62728" font-weight="bold">longest chain</text>"##,
        lx + 16.0
    );
    // Grid and axis.
    let axis_y = TOP + ROW_H * bars.len() as f64 + 4.0;
    let mut t = 0.0;
    while t <= axis_end + 1e-9 {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{1:.0}" x2="{0:.1}" y2="{2:.0}" stroke="#e3e3e3"/><text x="{0:.1}" y="{3:.0}" text-anchor="middle">{4}</text>"##,
            x(t),
            TOP - 6.0,
            axis_y,
            axis_y + 13.0,
            (t / 60.0).round()
        );
        t += step_s;
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.0}" y="{:.0}" text-anchor="middle">time since start (minutes)</text>"#,
        LABEL_W + CHART_W / 2.0,
        axis_y + 28.0
    );
    if let Some((at, label)) = mark {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{1:.0}" x2="{0:.1}" y2="{2:.0}" stroke="#2ca02c" stroke-width="2" stroke-dasharray="6,3"/><text x="{3:.1}" y="{4:.0}" fill="#2ca02c" font-weight="bold">{5}</text>"##,
            x(at),
            TOP - 10.0,
            axis_y,
            x(at) + 4.0,
            TOP - 12.0,
            escape(label)
        );
    }
    for (row, b) in bars.iter().enumerate() {
        let y = TOP + ROW_H * row as f64;
        let (bx, bw) = (x(b.start_s), (x(b.end_s) - x(b.start_s)).max(2.0));
        let (stroke, weight, label_colour) = if b.critical {
            (r##" stroke="#d62728" stroke-width="2""##, "bold", "#d62728")
        } else {
            ("", "normal", "#222222")
        };
        let _ = writeln!(
            s,
            r#"<text x="{:.0}" y="{:.1}" text-anchor="end" font-weight="{weight}" fill="{label_colour}">{}</text>"#,
            LABEL_W - 6.0,
            y + 10.0,
            escape(&b.key)
        );
        let _ = writeln!(
            s,
            r#"<rect x="{bx:.1}" y="{:.1}" width="{bw:.1}" height="{:.1}" fill="{}"{stroke}><title>{}: {:.0}-{:.0} s</title></rect>"#,
            y + 2.0,
            ROW_H - 4.0,
            b.tier.colour(),
            escape(&b.key),
            b.start_s,
            b.end_s
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#555555" font-size="9">{:.0} s</text>"##,
            bx + bw + 3.0,
            y + 10.0,
            b.end_s - b.start_s
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Config;
    use crate::core::spec::{self, SpecInput};

    fn n(key: &str, kind: Kind, deps: &[&str]) -> NodeSpec {
        NodeSpec {
            key: key.into(),
            kind,
            deps: deps.iter().map(|d| d.to_string()).collect(),
            props: Props::Recorded,
        }
    }

    /// vpc(5) -> subnet(2) -> nat(100); db-params(1) -> db(1) -> db-endpoint(900);
    /// efs(8) -> mt(80); role(2) -> lambda(60); alb(150) -> listener(1); secret(1).
    fn tiny() -> (Graph, impl Fn(&NodeSpec) -> f64) {
        let g = Graph::new(vec![
            n("vpc", Kind::Vpc, &[]),
            n("subnet", Kind::Subnet, &["vpc"]),
            n("nat", Kind::NatGateway, &["subnet"]),
            n("db-params", Kind::DbParameterGroup, &[]),
            n("db", Kind::DbInstance, &["db-params", "subnet"]),
            n("db-endpoint", Kind::DbEndpoint, &["db"]),
            n("efs", Kind::FileSystem, &[]),
            n("mt", Kind::MountTarget, &["efs", "subnet"]),
            n("role", Kind::IamRole, &[]),
            n("lambda", Kind::LambdaFunction, &["role", "mt"]),
            n("alb", Kind::LoadBalancer, &["subnet"]),
            n("listener", Kind::Listener, &["alb"]),
            n("secret", Kind::Secret, &[]),
        ])
        .unwrap();
        let w = |node: &NodeSpec| match node.key.as_str() {
            "vpc" => 5.0,
            "subnet" => 2.0,
            "nat" => 100.0,
            "db-endpoint" => 900.0,
            "efs" => 8.0,
            "mt" => 80.0,
            "role" => 2.0,
            "lambda" => 60.0,
            "alb" => 150.0,
            _ => 1.0,
        };
        (g, w)
    }

    #[test]
    fn stacks_take_their_internal_longest_chain() {
        let (g, w) = tiny();
        let d = stack_durations(&g, &w);
        assert_eq!(d[&VendorStack::Config], 1.0);
        assert_eq!(d[&VendorStack::Network], 107.0);
        // db-params -> db -> db-endpoint; the edge from the subnet crosses stacks and is ignored.
        assert_eq!(d[&VendorStack::Rds], 902.0);
        assert_eq!(d[&VendorStack::Efs], 88.0);
        assert_eq!(d[&VendorStack::Iam], 2.0);
        assert_eq!(d[&VendorStack::Lambda], 60.0);
        assert_eq!(d[&VendorStack::Ec2], 151.0);
    }

    #[test]
    fn vendor_makespan_runs_rds_beside_efs_iam_lambda() {
        let (g, w) = tiny();
        let v = vendor_schedule(&g, &w);
        assert_eq!(v.makespan, 1.0 + 107.0 + 902.0 + 151.0);
        assert_eq!(
            v.describe(),
            "Config 1 + Network 107 + max(RDS 902, EFS 88 + IAM 2 + Lambda 60) + EC2 151"
        );
        // When the side branch is the longer one, it decides.
        let mut d = v.stacks.clone();
        d.insert(VendorStack::Rds, 10.0);
        assert_eq!(vendor_makespan(&d), 1.0 + 107.0 + 150.0 + 151.0);
    }

    #[test]
    fn empty_stacks_count_zero() {
        let g = Graph::new(vec![n("vpc", Kind::Vpc, &[])]).unwrap();
        let v = vendor_schedule(&g, |_| 5.0);
        assert_eq!(v.makespan, 5.0);
        assert_eq!(v.stacks[&VendorStack::Rds], 0.0);
    }

    #[test]
    fn full_architecture_is_a_valid_graph_with_every_stack_and_tier() {
        let mut cfg = Config::default();
        cfg.licence.env = Some("PI_LICENCE".into());
        let input = SpecInput {
            config: &cfg,
            region: "eu-west-1",
            azs: ["eu-west-1a".into(), "eu-west-1b".into()],
        };
        let g = Graph::new(spec::build(&input)).expect("valid graph");
        let stacks: BTreeSet<VendorStack> = g.nodes().iter().map(|n| vendor_stack(n.kind)).collect();
        assert_eq!(stacks.len(), VendorStack::ALL.len());
        let tiers: BTreeSet<Tier> = g.nodes().iter().map(tier).collect();
        assert_eq!(tiers.len(), Tier::ALL.len());
        assert_eq!(tier(g.get("lambda-role").unwrap()), Tier::Sideload);
        assert_eq!(tier(g.get("ec2-role").unwrap()), Tier::Compute);
    }

    #[test]
    fn bars_span_every_operation_of_a_key_and_sort_by_start() {
        let (g, _) = tiny();
        let spans = vec![
            ("subnet".to_string(), 5.0, 6.0),
            ("vpc".to_string(), 0.0, 1.0),
            ("vpc".to_string(), 1.0, 5.0),
            ("not-in-graph".to_string(), 0.0, 1.0),
        ];
        let critical: BTreeSet<String> = ["vpc".to_string()].into();
        let b = bars(&g, spans, &critical);
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].key.as_str(), b[0].start_s, b[0].end_s, b[0].critical),
            ("vpc", 0.0, 5.0, true)
        );
        assert_eq!(
            (b[1].key.as_str(), b[1].tier, b[1].critical),
            ("subnet", Tier::Network, false)
        );
    }

    #[test]
    fn headline_has_the_form_scripts_read() {
        assert_eq!(
            headline("up", "longest chain", 1.0349, "median"),
            "up makespan / longest chain = 1.03 (median latencies)"
        );
        assert_eq!(
            headline("up", "vendor schedule", 0.58, "slow"),
            "up makespan / vendor schedule = 0.58 (slow latencies)"
        );
    }

    #[test]
    fn gantt_has_a_row_per_bar_and_a_minute_axis() {
        let bars = vec![
            Bar {
                key: "vpc".into(),
                tier: Tier::Network,
                start_s: 0.0,
                end_s: 6.0,
                critical: true,
            },
            Bar {
                key: "db<x>".into(),
                tier: Tier::Data,
                start_s: 6.0,
                end_s: 966.0,
                critical: false,
            },
        ];
        let svg = gantt_svg(&bars, "up");
        assert!(!svg.contains("stroke-dasharray"));
        let marked = gantt_svg_marked(&bars, "up", Some((100.0, "usable after 1m40s")));
        assert!(marked.contains("stroke-dasharray") && marked.contains("usable after 1m40s"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(">vpc</text>") && svg.contains("db&lt;x&gt;"));
        assert!(svg.contains(r##"stroke="#d62728" stroke-width="2"><title>vpc"##));
        // 966 s -> 2-minute ticks up to 18 minutes.
        assert!(svg.contains(">18</text>") && !svg.contains(">20</text>"));
        assert_eq!(tick_minutes(966.0), 2.0);
        assert_eq!(tick_minutes(300.0), 1.0);
    }
}
