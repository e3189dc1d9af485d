//! `pi-deploy.example.toml` documents every option: it parses into the config struct with
//! nothing unknown, its values are the defaults, and no option is missing from it.

use std::collections::BTreeSet;

use pi_deploy::core::config::Config;

const EXAMPLE: &str = include_str!("../../pi-deploy.example.toml");

/// Dotted keys of a TOML table, e.g. `network.vpc_cidr`.
fn paths(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => paths(t, &path, out),
            _ => {
                out.insert(path);
            }
        }
    }
}

/// The example with every commented-out option line (`# key = value`) switched on.
fn uncommented() -> String {
    EXAMPLE
        .lines()
        .map(|l| {
            let t = l.trim_start_matches("# ");
            if l.starts_with("# ")
                && t.split_once(" = ")
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            {
                t.to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn example_values_are_the_defaults() {
    let parsed: Config = toml::from_str(EXAMPLE).expect("example parses with no unknown key");
    assert_eq!(parsed, Config::default());
}

#[test]
fn example_lists_every_option() {
    // With the optional lines switched on (licence: one source at a time is valid, but
    // both parse), every field of the struct must be present.
    let full: toml::Table = toml::from_str(&uncommented()).expect("uncommented example parses");
    let parsed: Config = toml::from_str(&uncommented()).expect("every documented key is a real option");
    let mut documented = BTreeSet::new();
    paths(&full, "", &mut documented);
    let mut known = BTreeSet::new();
    paths(&toml::Table::try_from(&parsed).unwrap(), "", &mut known);
    let missing: Vec<_> = known.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "options missing from pi-deploy.example.toml: {missing:?}"
    );
}
