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
    Arc::new(Graph::new(spec::build_all(&input)).expect("the architecture graph is valid"))
}

fn figure_name(f: Figure) -> &'static str {
    match f {
        Figure::Median => "median",
        Figure::Slow => "slow",
    }
}

fn create_s(n: &NodeSpec, f: Figure) -> f64 {
    latency::create_timing(n.kind).get(f)
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

fn report(op: &str, graph: &Graph, run: &Run, f: Figure, weight: impl Fn(&NodeSpec) -> f64 + Copy) -> Figures {
    let (chain_s, mut keys) = graph.critical_path(weight);
    if op == "destroy" {
        keys.reverse();
    }
    let vendor = bench_model::vendor_schedule(graph, weight);
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

fn write_gantt(graph: &Graph, run: &Run, scenario: &str) {
    let (_, chain) = graph.critical_path(|n| create_s(n, Figure::Median));
    let critical: BTreeSet<String> = chain.into_iter().collect();
    let spans = run
        .spans
        .iter()
        .map(|s| (s.key.clone(), s.start.as_secs_f64(), s.end.as_secs_f64()));
    let bars = bench_model::bars(graph, spans, &critical);
    let title = format!(
        "pi-deploy up, modelled with median latencies, {scenario}: {} resources, makespan {}",
        bars.len(),
        minutes(run.makespan_s)
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/bench");
    std::fs::create_dir_all(&dir).expect("create docs/bench");
    let path = dir.join("up-gantt.svg");
    std::fs::write(&path, bench_model::gantt_svg(&bars, &title)).expect("write the Gantt chart");
    println!("  Gantt chart of up (median latencies): {}", path.display());
}

fn main() {
    let mut headlines = Vec::new();
    for (index, scenario) in scenarios().iter().enumerate() {
        let graph = graph_of(&scenario.cfg);
        println!("== config: {} -- {} resources", scenario.name, graph.len());
        for f in [Figure::Median, Figure::Slow] {
            let up = run_up(&graph, f);
            let up_figs = report("up", &graph, &up, f, |n| create_s(n, f));
            if index == 0 && f == Figure::Median {
                write_gantt(&graph, &up, "default config");
            }
            let destroy = run_destroy(&graph, up.state, f);
            let destroy_figs = report("destroy", &graph, &destroy, f, |n| delete_s(n, f));
            // The exact lines scripts read are for the default configuration.
            if index == 0 {
                let name = figure_name(f);
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
