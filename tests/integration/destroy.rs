//! `destroy` as a whole: nothing left in any service, with or without the state file,
//! resumable after SIGKILL at any point, idempotent, and in an order AWS accepts.

use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{DomainType, ResourceType, Tag, TagSpecification};

use crate::census;
use crate::common::{Deployment, clients, events, show};

fn destroy_args() -> Vec<&'static str> {
    vec![
        "destroy",
        "--yes",
        "--skip-final-snapshot",
        "--disable-deletion-protection",
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_without_a_state_file_finds_everything_by_tag_and_name() {
    let c = clients().await;
    let d = Deployment::new("nostate");
    d.up(&[]);
    let built = census::everything(&c, &d.name).await;
    assert!(!built.is_empty());
    d.remove_state();
    let out = d.ok(&destroy_args());
    let left = census::everything(&c, &d.name).await;
    assert!(left.is_empty(), "left behind: {left:?}\n{}", show(&out));
    assert!(!d.state_exists());
}

/// Every list is read to its last page: EFS pages of file systems hold 100 on AWS and 10 on
/// the emulator, which the suite's deployments share (a census that read one page missed a
/// deployment's file system once 10 others were live, and each failed test left more). With
/// more file systems in the account than a page, the deployment's last, the census and
/// `destroy` without a state file find it, and `destroy` deletes each of its access points
/// (pages of 100 on AWS; the emulator does not page them).
#[tokio::test(flavor = "multi_thread")]
async fn a_file_system_past_the_first_page_is_found_and_destroyed_with_its_access_points() {
    use aws_sdk_efs::types::Tag as EfsTag;
    let c = clients().await;
    let d = Deployment::new("paged");
    let tag = |k: &str, v: &str| EfsTag::builder().key(k).value(v).build().unwrap();
    let other = format!("{}-x", d.name);
    let mut others = Vec::new();
    for i in 0..11 {
        let fs = c
            .efs
            .create_file_system()
            .creation_token(format!("{other}-{i}"))
            .tags(tag("pi-deploy:deployment", &other))
            .send()
            .await
            .unwrap();
        others.push(fs.file_system_id().to_string());
    }
    let ours = c
        .efs
        .create_file_system()
        .creation_token(format!("{}-efs", d.name))
        .tags(tag("pi-deploy:deployment", &d.name))
        .tags(tag("pi-deploy:key", "efs"))
        .send()
        .await
        .unwrap()
        .file_system_id()
        .to_string();
    for i in 0..3 {
        c.efs
            .create_access_point()
            .client_token(format!("{}-ap-{i}", d.name))
            .file_system_id(&ours)
            .tags(tag("pi-deploy:deployment", &d.name))
            .tags(tag("pi-deploy:key", &format!("ap-{i}")))
            .send()
            .await
            .unwrap();
    }
    let found = census::everything(&c, &d.name).await;
    assert_eq!(
        found.get("efs-file-system"),
        Some(&vec!["efs".to_string()]),
        "{found:?}"
    );
    assert_eq!(found.get("efs-access-point").map(Vec::len), Some(3), "{found:?}");

    let mut args = destroy_args();
    args.push("--json");
    let out = d.ok(&args);
    // Each access point is found and deleted by `destroy`, not taken with its file system.
    let ev = events(&out);
    let mut deleted: Vec<&str> = ev
        .iter()
        .filter(|e| e["event"] == "resource" && e["status"] == "deleted" && e["kind"] == "access-point")
        .filter_map(|e| e["id"].as_str())
        .collect();
    deleted.sort();
    deleted.dedup();
    assert_eq!(deleted.len(), 3, "{deleted:?}\n{}", show(&out));
    let left = census::everything(&c, &d.name).await;
    for id in others {
        c.efs.delete_file_system().file_system_id(id).send().await.unwrap();
    }
    assert!(left.is_empty(), "left behind: {left:?}\n{}", show(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_destroy_succeeds_and_does_nothing() {
    let d = Deployment::new("twice");
    d.up(&[]);
    d.ok(&destroy_args());
    let mut args = destroy_args();
    args.push("--json");
    let out = d.ok(&args);
    let ev = events(&out);
    assert_eq!(
        ev.iter().filter(|e| e["event"] == "resource").count(),
        0,
        "{}",
        show(&out)
    );
    assert!(ev.last().unwrap()["ok"].as_bool().unwrap());
}

/// SIGKILL `destroy` once the state file has lost `n` resources, then run it again.
fn kill_destroy_after(d: &Deployment, removed: usize) {
    let total = d.state()["resources"].as_object().unwrap().len();
    let mut child = d
        .command(&destroy_args())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let left = d
            .state_bytes()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["resources"].as_object().map(|r| r.len()));
        if left.is_some_and(|l| total - l >= removed) {
            child.kill().unwrap();
            child.wait().unwrap();
            d.force_unlock_after_kill();
            return;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_destroy_finishes_on_the_next_run() {
    let c = clients().await;
    for removed in [1, 10, 30] {
        let d = Deployment::new(&format!("kd{removed}"));
        d.up(&[]);
        kill_destroy_after(&d, removed);
        d.ok(&destroy_args());
        let left = census::everything(&c, &d.name).await;
        assert!(left.is_empty(), "after a kill at {removed} deletions, left: {left:?}");
    }
}

/// The implicit orderings AWS enforces (and moto does not): each `(first, then)` pair means
/// `first` must be gone before `then` starts deleting.
const ORDER: &[(&str, &str)] = &[
    ("nat-a", "igw"),
    ("nat-a", "eip-nat-a"),
    ("alb", "igw"),
    ("asg", "igw"),
    ("lambda", "subnet-app-a"),
    ("lambda", "subnet-app-b"),
    ("lambda", "sg-lambda"),
    ("efs-mt-a", "efs"),
    ("efs-mt-b", "efs"),
    ("bucket-notification", "lambda"),
    ("lambda-permission", "lambda"),
    ("listener-http", "tg"),
    ("asg", "launch-template"),
    ("asg", "subnet-app-a"),
    ("asg", "sg-app"),
    ("instance-profile", "ec2-role"),
    ("db", "db-subnet-group"),
    ("db", "db-params"),
    ("db", "sg-db"),
    ("vpce-ssm", "sg-endpoints"),
    ("vpce-ssm", "subnet-app-a"),
    ("efs-mt-a", "sg-efs"),
    ("sg-db", "sg-app"),
    ("sg-app", "sg-alb"),
];

#[tokio::test(flavor = "multi_thread")]
async fn destroy_honours_every_implicit_aws_ordering() {
    let d = Deployment::new("order");
    d.up(&[]);
    let mut args = destroy_args();
    args.push("--json");
    let out = d.ok(&args);
    let ev = events(&out);
    let position = |key: &str, status: &str| {
        ev.iter()
            .position(|e| e["event"] == "resource" && e["key"] == key && e["status"] == status)
    };
    let mut checked = 0;
    for (first, then) in ORDER {
        let (Some(gone), Some(starts)) = (position(first, "deleted"), position(then, "deleting")) else {
            // Both must be part of the architecture; a missing one is a test bug.
            panic!("`{first}` or `{then}` was not deleted:\n{}", show(&out));
        };
        assert!(gone < starts, "`{then}` started deleting before `{first}` was gone");
        checked += 1;
    }
    assert_eq!(checked, ORDER.len());
}

/// Tags of a resource the deployment's spec does not know (an older version's, say).
fn bogus_tags(resource: ResourceType, deployment: &str, key: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .tags(Tag::builder().key("pi-deploy:deployment").value(deployment).build())
        .tags(Tag::builder().key("pi-deploy:key").value(key).build())
        .build()
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_deletes_what_is_tagged_with_the_deployment_under_unknown_keys() {
    let c = clients().await;
    let d = Deployment::new("extras");
    d.up(&[]);
    let vpc = d.state()["resources"]["vpc"]["outputs"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let subnet = c
        .ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.0.9.0/24")
        .tag_specifications(bogus_tags(ResourceType::Subnet, &d.name, "bogus/subnet"))
        .send()
        .await
        .unwrap();
    let subnet = subnet.subnet().and_then(|s| s.subnet_id()).unwrap().to_string();
    let group = c
        .ec2
        .create_security_group()
        .vpc_id(&vpc)
        .group_name(format!("{}-bogus", d.name))
        .description("left by an older version")
        .tag_specifications(bogus_tags(ResourceType::SecurityGroup, &d.name, "bogus/sg"))
        .send()
        .await
        .unwrap();
    let group = group.group_id().unwrap().to_string();
    let eip = c
        .ec2
        .allocate_address()
        .domain(DomainType::Vpc)
        .tag_specifications(bogus_tags(ResourceType::ElasticIp, &d.name, "bogus/eip"))
        .send()
        .await
        .unwrap();
    let eip = eip.allocation_id().unwrap().to_string();
    let built = census::everything(&c, &d.name).await;
    for (kind, key) in [
        ("subnet", "bogus/subnet"),
        ("security-group", "bogus/sg"),
        ("elastic-ip", "bogus/eip"),
    ] {
        assert!(
            built.get(kind).is_some_and(|keys| keys.iter().any(|k| k == key)),
            "the census does not see {key}: {built:?}"
        );
    }

    let mut args = destroy_args();
    args.push("--json");
    let out = d.ok(&args);
    let text = show(&out);
    for id in [&subnet, &group, &eip] {
        assert!(text.contains(id.as_str()), "{id} is not named:\n{text}");
    }
    // Deleted (not only named), and before the VPC that holds them.
    let ev = events(&out);
    let position = |key: &str, status: &str| {
        ev.iter()
            .position(|e| e["event"] == "resource" && e["key"] == key && e["status"] == status)
    };
    let vpc_deleting = position("vpc", "deleting").expect("the VPC is deleted");
    for key in [
        format!("subnet/extra-{subnet}"),
        format!("security-group/extra-{group}"),
        format!("elastic-ip/extra-{eip}"),
    ] {
        let gone = position(&key, "deleted").unwrap_or_else(|| panic!("`{key}` was not deleted:\n{text}"));
        if !key.starts_with("elastic-ip") {
            assert!(gone < vpc_deleting, "`vpc` started deleting before `{key}` was gone");
        }
    }
    let left = census::everything(&c, &d.name).await;
    assert!(left.is_empty(), "left behind: {left:?}\n{text}");
    assert!(!d.state_exists());
}
