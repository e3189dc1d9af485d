//! Modelled benchmark: the real executor over the in-memory cloud in tokio's paused virtual
//! time, every operation taking its latency-model figure. No emulator, no AWS, runs in about a
//! second. `cargo bench --bench modelled`.
//!
//! For each configuration and for the median and the slow figures it reports, for `up` and
//! `destroy`: the makespan, the longest chain of the same graph with the same weights (the
//! lower bound no scheduler can beat), their ratio, and the vendor's nested-stack schedule under
//! the same model (`core::bench_model` documents its assumptions). It also writes the Gantt chart
//! of the default configuration's `up` (median figures) to docs/bench/up-gantt.svg.
//!
//! Usable early (issue 20, `[database] usable_early`, on by default): the default graph
//! creates the database Single-AZ and converts it afterwards (`db-standby`). For it the
//! benchmark also reports when the dashboard is usable (the end of the `dashboard` check)
//! against today's longest chain (the same configuration with `usable_early = false`,
//! whose database is created Multi-AZ), and when the run completes against today's
//! makespan. The vendor's schedule is always computed on today's graph (the vendor creates
//! the database Multi-AZ).
//!
//! Timing of one node: `create` (the call) takes min(1 s, total) and `converge` (the wait) the
//! rest, so create + converge = the model's create figure for the kind; `delete` takes the
//! kind's delete figure. The executor's priorities use the median figures in both runs, as the
//! CLI does: a slow run is one where AWS is slow, not one the scheduler knew about.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use pi_deploy::core::bench_model::{self, VendorSchedule};
use pi_deploy::core::config::{Config, LicenceConfig, Purpose};
use pi_deploy::core::event::Discard;
use pi_deploy::core::executor::{Executor, Limits, NoStore, Outcome};
use pi_deploy::core::fake::{FakeCloud, Span};
use pi_deploy::core::graph::Graph;
use pi_deploy::core::latency::{self, Figure};
use pi_deploy::core::spec::{self, NodeSpec, SpecInput};
use pi_deploy::core::state::{Identity, State};
use tokio::sync::watch;
use tokio::time::Instant;

const REGION: &str = "eu-west-1";
const AMI: &str = "ami-0d31d4f8d69d7977a";

struct Scenario {
    name: &'static str,
    cfg: Config,
}

fn scenarios() -> Vec<Scenario> {
    let default = Config {
        ami: Some(AMI.into()),
        ..Config::default()
    };
    let full = Config {
        certificate_arn: Some(
            "arn:aws:acm:eu-west-1:123456789012:certificate/0b6c3a52-0000-4000-8000-000000000000".into(),
        ),
        hosted_zone_id: Some("Z0123456789ABCDEFGHIJ".into()),
        domain_name: Some("dashboard.example.com".into()),
        licence: LicenceConfig {
            env: Some("PI_LICENCE".into()),
            file: None,
        },
        ..default.clone()
    };
    vec![
        Scenario {
            name: "default (deployment \"pi\", an AMI, no certificate)",
            cfg: default,
        },
        Scenario {
            name: "certificate + Route 53 record + licence",
            cfg: full,
        },
    ]
}

fn graph_of(cfg: &Config) -> Arc<Graph> {
    let errors = cfg.validate(Purpose::Up);
    assert!(errors.is_empty(), "benchmark config is invalid: {errors:?}");
    let input = SpecInput {
        config: cfg,
        region: REGION,
        azs: [format!("{REGION}a"), format!("{REGION}b")],
    };
    Arc::new(Graph::new(spec::build(&input)).expect("the architecture graph is valid"))
}

fn figure_name(f: Figure) -> &'static str {
    match f {
        Figure::Median => "median",
        Figure::Slow => "slow",
    }
}

/// As the props make it: the endpoint waits for a Single-AZ instance on the usable-early
/// path, and the standby node for the conversion.
fn create_s(n: &NodeSpec, f: Figure) -> f64 {
    latency::node_create_timing(n).get(f)
}

/// The same configuration as today (before usable early): created Multi-AZ.
fn today(cfg: &Config) -> Config {
    let mut cfg = cfg.clone();
    cfg.database.usable_early = false;
    cfg
}

fn delete_s(n: &NodeSpec, f: Figure) -> f64 {
    latency::delete_timing(n.kind).get(f)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("tokio runtime")
}

struct Run {
    makespan_s: f64,
    spans: Vec<Span>,
    max_in_flight: usize,
    state: State,
}

/// Drive the real executor over a fake cloud configured by `setup`, in paused time.
fn run(setup: impl FnOnce(&mut FakeCloud), walk: impl AsyncFnOnce(&Executor<FakeCloud>) -> Outcome) -> Run {
    runtime().block_on(async {
        // Created inside the runtime so its origin is on the paused clock.
        let mut cloud = FakeCloud::new();
        setup(&mut cloud);
        let cloud = Arc::new(cloud);
        // The sender must outlive the run: a closed channel reads as Ctrl-C.
        let (_cancel_tx, cancel) = watch::channel(false);
        let exec = Executor {
            cloud: cloud.clone(),
            store: Arc::new(NoStore),
            events: Arc::new(Discard),
            limits: Limits::default(),
            cancel,
        };
        let t0 = Instant::now();
        let outcome = walk(&exec).await;
        let makespan_s = t0.elapsed().as_secs_f64();
        assert!(
            outcome.ok(),
            "modelled run failed: {:?} skipped {:?}",
            outcome.failed,
            outcome.skipped
        );
        Run {
            makespan_s,
            spans: cloud.spans(),
            max_in_flight: cloud.max_in_flight(),
            state: outcome.state,
        }
    })
}

fn run_up(graph: &Arc<Graph>, f: Figure) -> Run {
    let weights = graph.longest_remaining(|n| create_s(n, Figure::Median));
    run(
        |cloud| {
            for n in graph.nodes() {
                let total = create_s(n, f);
                let call = total.min(1.0);
                cloud.create_time.insert(n.key.clone(), Duration::from_secs_f64(call));
                cloud
                    .converge_time
                    .insert(n.key.clone(), Duration::from_secs_f64(total - call));
            }
        },
        async |exec| {
            let identity = Identity {
                deployment: "pi".into(),
                region: REGION.into(),
                account_id: "123456789012".into(),
                partition: "aws".into(),
            };
            exec.up(graph.clone(), State::new(&identity), &weights).await
        },
    )
}

fn run_destroy(graph: &Arc<Graph>, state: State, f: Figure) -> Run {
    let weights = graph.longest_remaining_reverse(|n| delete_s(n, Figure::Median));
    run(
        |cloud| {
            for n in graph.nodes() {
                cloud
                    .delete_time
                    .insert(n.key.clone(), Duration::from_secs_f64(delete_s(n, f)));
            }
        },
        async |exec| exec.destroy(graph.clone(), state, &weights).await,
    )
}

fn minutes(s: f64) -> String {
    format!("{s:.0} s ({:.1} min)", s / 60.0)
}

fn chain_text(graph: &Graph, keys: &[String], weight: impl Fn(&NodeSpec) -> f64) -> String {
    keys.iter()
        .map(|k| format!("{k} ({:.0})", weight(graph.get(k).expect("chain key is in the graph"))))
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// The figures of one operation under one figure, and the headline ratios.
struct Figures {
    makespan_s: f64,
    chain_s: f64,
    vendor: VendorSchedule,
}

impl Figures {
    fn vs_chain(&self) -> f64 {
        self.makespan_s / self.chain_s
    }
    fn vs_vendor(&self) -> f64 {
        self.makespan_s / self.vendor.makespan
    }
}

fn report(
    op: &str,
    graph: &Graph,
    vendor_graph: &Graph,
    run: &Run,
    f: Figure,
    weight: impl Fn(&NodeSpec) -> f64 + Copy,
) -> Figures {
    // In deletion order for destroy, whose edges leave out what AWS deletes with its
    // container (`Graph::destroy_critical_path`).
    let (chain_s, keys) = if op == "destroy" {
        graph.destroy_critical_path(weight)
    } else {
        graph.critical_path(weight)
    };
    let vendor = bench_model::vendor_schedule(vendor_graph, weight);
    let figs = Figures {
        makespan_s: run.makespan_s,
        chain_s,
        vendor,
    };
    println!("  {op} ({} latencies)", figure_name(f));
    println!(
        "    makespan          {}  (at most {} operations in flight)",
        minutes(figs.makespan_s),
        run.max_in_flight
    );
    println!(
        "    longest chain     {}: {}",
        minutes(chain_s),
        chain_text(graph, &keys, weight)
    );
    println!(
        "    vendor schedule   {}: {}",
        minutes(figs.vendor.makespan),
        figs.vendor.describe()
    );
    println!(
        "    makespan / longest chain = {:.3}; makespan / vendor schedule = {:.3}",
        figs.vs_chain(),
        figs.vs_vendor()
    );
    figs
}

/// When the dashboard check ended in a run: the usable moment.
fn usable_s(run: &Run) -> f64 {
    run.spans
        .iter()
        .filter(|s| s.key == "dashboard")
        .map(|s| s.end.as_secs_f64())
        .fold(0.0, f64::max)
}

/// Usable early against today: the figures of the new headline lines.
struct Early {
    usable_s: f64,
    complete_s: f64,
    today_chain_s: f64,
    today_makespan_s: f64,
}

impl Early {
    fn usable_vs_chain(&self) -> f64 {
        self.usable_s / self.today_chain_s
    }
    fn later_s(&self) -> f64 {
        self.complete_s - self.today_makespan_s
    }
}

fn report_early(early_run: &Run, today_graph: &Graph, today_run: &Run, f: Figure) -> Early {
    let (today_chain_s, keys) = today_graph.critical_path(|n| create_s(n, f));
    let e = Early {
        usable_s: usable_s(early_run),
        complete_s: early_run.makespan_s,
        today_chain_s,
        today_makespan_s: today_run.makespan_s,
    };
    println!("  usable early ({} latencies)", figure_name(f));
    println!(
        "    usable after      {} (the dashboard check passes, the database still Single-AZ)",
        minutes(e.usable_s)
    );
    println!(
        "    complete after    {} (Multi-AZ verified); today's makespan {}: {:+.0} s ({:+.1} min)",
        minutes(e.complete_s),
        minutes(e.today_makespan_s),
        e.later_s(),
        e.later_s() / 60.0
    );
    println!(
        "    today's longest chain {}: {}",
        minutes(today_chain_s),
        chain_text(today_graph, &keys, |n| create_s(n, f))
    );
    println!(
        "    up time to usable / longest chain = {:.3}; time to complete / today's makespan = {:.3}",
        e.usable_vs_chain(),
        e.complete_s / e.today_makespan_s
    );
    e
}

fn write_gantt(graph: &Graph, run: &Run, scenario: &str) {
    let (_, chain) = graph.critical_path(|n| create_s(n, Figure::Median));
    let critical: BTreeSet<String> = chain.into_iter().collect();
    let spans = run
        .spans
        .iter()
        .map(|s| (s.key.clone(), s.start.as_secs_f64(), s.end.as_secs_f64()));
    let bars = bench_model::bars(graph, spans, &critical);
    let usable = usable_s(run);
    let title = format!(
        "pi-deploy up, modelled with median latencies, {scenario}: {} resources, usable after {}, makespan {}",
        bars.len(),
        minutes(usable),
        minutes(run.makespan_s)
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/bench");
    std::fs::create_dir_all(&dir).expect("create docs/bench");
    let path = dir.join("up-gantt.svg");
    let label = format!("dashboard usable: {}", minutes(usable));
    let svg = bench_model::gantt_svg_marked(&bars, &title, Some((usable, &label)));
    std::fs::write(&path, svg).expect("write the Gantt chart");
    println!("  Gantt chart of up (median latencies): {}", path.display());
}

fn main() {
    let mut headlines = Vec::new();
    for (index, scenario) in scenarios().iter().enumerate() {
        let graph = graph_of(&scenario.cfg);
        let today_graph = graph_of(&today(&scenario.cfg));
        println!("== config: {} -- {} resources", scenario.name, graph.len());
        for f in [Figure::Median, Figure::Slow] {
            let up = run_up(&graph, f);
            let up_figs = report("up", &graph, &today_graph, &up, f, |n| create_s(n, f));
            let today_up = run_up(&today_graph, f);
            let early = report_early(&up, &today_graph, &today_up, f);
            if index == 0 && f == Figure::Median {
                write_gantt(&graph, &up, "default config");
            }
            let destroy = run_destroy(&graph, up.state, f);
            let destroy_figs = report("destroy", &graph, &today_graph, &destroy, f, |n| delete_s(n, f));
            // The exact lines scripts read are for the default configuration.
            if index == 0 {
                let name = figure_name(f);
                headlines.push(format!(
                    "up time to usable / longest chain = {:.2} ({name} latencies)",
                    early.usable_vs_chain()
                ));
                headlines.push(format!(
                    "up time to complete = {:.0} s, {:+.0} s against today's makespan of {:.0} s ({name} latencies)",
                    early.complete_s,
                    early.later_s(),
                    early.today_makespan_s
                ));
                headlines.push(bench_model::headline("up", "longest chain", up_figs.vs_chain(), name));
                headlines.push(bench_model::headline(
                    "up",
                    "vendor schedule",
                    up_figs.vs_vendor(),
                    name,
                ));
                headlines.push(bench_model::headline(
                    "destroy",
                    "longest chain",
                    destroy_figs.vs_chain(),
                    name,
                ));
                headlines.push(bench_model::headline(
                    "destroy",
                    "vendor schedule",
                    destroy_figs.vs_vendor(),
                    name,
                ));
            }
        }
        println!();
    }
    println!("== headline (default configuration)");
    for line in headlines {
        println!("{line}");
    }
}
