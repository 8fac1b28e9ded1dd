//! How config mistakes read: every kind of error `ostler config check` reports, with
//! file, line and column. The messages are snapshots: change them on purpose only.

use std::path::Path;

use ostler_core::config::Config;
use ostler_core::Error;

const BASE: &str = r#"
[service]
name = "guestbook"

[roles]
production = "gb-1"

[instances.gb-1]
dir = "instances/gb-1"
start = "./guestbook --port {port} --db {db}"
port = 18081

[instances.gb-2]
dir = "instances/gb-2"
start = "./guestbook --port {port} --db {db}"
port = 18082
"#;

fn check(text: &str) -> String {
    match Config::parse(text, Path::new("ostler.toml")) {
        Ok(_) => "ok".into(),
        Err(Error::Config { diagnostics }) => diagnostics
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("unexpected error kind: {e}"),
    }
}

#[test]
fn the_base_config_is_valid() {
    assert_eq!(check(BASE), "ok");
}

#[test]
fn every_shipped_example_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n > 0, "no examples found in {}", dir.display());
}

#[test]
fn unknown_key_points_at_it() {
    let text = BASE.replace("port = 18082", "port = 18082\nprot = 1");
    insta::assert_snapshot!(check(&text));
}

#[test]
fn wrong_type_points_at_the_value() {
    let text = BASE.replace("port = 18082", "port = \"eighteen\"");
    insta::assert_snapshot!(check(&text));
}

#[test]
fn role_naming_no_instance() {
    let text = BASE.replace("production = \"gb-1\"", "production = \"gb-9\"");
    insta::assert_snapshot!(check(&text));
}

#[test]
fn two_instances_on_one_port() {
    let text = BASE.replace("port = 18082", "port = 18081");
    insta::assert_snapshot!(check(&text));
}

#[test]
fn bad_duration() {
    let text = BASE.replace(
        "port = 18082",
        "port = 18082\nstop_timeout = \"10 parsecs\"",
    );
    insta::assert_snapshot!(check(&text));
}

#[test]
fn password_in_a_url_is_refused() {
    let text = BASE.replace(
        "port = 18082",
        "port = 18082\n[instances.gb-2.database]\nkind = \"postgres\"\nurl = \"postgres://gb:hunter2@127.0.0.1/gb\"",
    );
    let out = check(&text);
    assert!(
        !out.contains("hunter2"),
        "the password leaked into the message: {out}"
    );
    insta::assert_snapshot!(out);
}

#[test]
fn several_problems_are_reported_together() {
    let text = BASE
        .replace("production = \"gb-1\"", "production = \"nope\"")
        .replace("port = 18082", "port = 18081");
    let out = check(&text);
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn toml_syntax_error_has_a_line() {
    let text = BASE.replace("[instances.gb-2]", "[instances.gb-2");
    insta::assert_snapshot!(check(&text));
}

#[test]
fn missing_required_key() {
    let text = BASE.replace(
        "start = \"./guestbook --port {port} --db {db}\"\nport = 18082",
        "port = 18082",
    );
    insta::assert_snapshot!(check(&text));
}

#[test]
fn sqlite_without_path_and_unknown_engine() {
    let text = BASE.replace(
        "port = 18082",
        "port = 18082\n[instances.gb-2.database]\nkind = \"oracle\"",
    );
    insta::assert_snapshot!(check(&text));
}

#[test]
fn role_set_rewrites_the_file_keeping_comments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ostler.toml");
    let text = BASE.replace("[roles]", "# who serves the public\n[roles]");
    std::fs::write(&path, &text).unwrap();
    ostler_core::config::write_role(&path, "production", "gb-2").unwrap();
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(after.contains("# who serves the public"));
    let c = Config::load(&path).unwrap();
    assert_eq!(c.resolve("production").unwrap(), "gb-2");
    // A role pointing nowhere is refused and the file is left as it was.
    assert!(ostler_core::config::write_role(&path, "old", "gb-9").is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), after);
}

#[test]
fn a_password_in_the_url_query_is_refused() {
    let text = BASE.replace(
        "port = 18082",
        "port = 18082\n[instances.gb-2.database]\nkind = \"postgres\"\nurl = \"postgres://gb@127.0.0.1/gb?sslmode=disable&password=hunter2\"",
    );
    let out = check(&text);
    assert!(
        !out.contains("hunter2"),
        "the password leaked into the message: {out}"
    );
    insta::assert_snapshot!(out);
}

#[test]
fn an_instance_name_that_climbs_out_of_the_state_dir_is_refused() {
    let text = BASE.replace("[instances.gb-2]", "[instances.\"../../victim\"]");
    insta::assert_snapshot!(check(&text));
}

#[test]
fn instance_and_role_names_with_a_slash_a_comma_or_nothing_are_refused() {
    let text = format!(
        "{BASE}\n[instances.\"a/b\"]\ndir = \"x\"\nstart = \"x\"\nport = 1\n\n[instances.\"a,b\"]\ndir = \"y\"\nstart = \"y\"\nport = 2\n\n[instances.\"\"]\ndir = \"z\"\nstart = \"z\"\nport = 3\n"
    )
    .replace("production = \"gb-1\"", "production = \"gb-1\"\n\".\" = \"gb-1\"");
    insta::assert_snapshot!(check(&text));
}

#[test]
fn a_store_name_that_climbs_out_of_an_export_is_refused() {
    let text = BASE.replace(
        "port = 18082",
        "port = 18082\n[[instances.gb-2.stores]]\nname = \"../up\"\npath = \"uploads\"",
    );
    insta::assert_snapshot!(check(&text));
}

#[test]
fn retention_keys_are_snake_case_and_the_old_kebab_spelling_is_read_with_a_warning() {
    let new = format!("{BASE}\n[retention]\nkeep_last = 3\nkeep_daily = 7\n");
    let c = Config::parse(&new, Path::new("ostler.toml")).unwrap();
    let r = c.retention.as_ref().unwrap();
    assert_eq!((r.keep_last, r.keep_daily), (Some(3), Some(7)));
    assert!(c.deprecations.is_empty(), "{:?}", c.deprecations);

    let old = format!("{BASE}\n[retention]\nkeep-last = 3\nkeep_daily = 7\nkeep-within = \"2d\"\n");
    let c = Config::parse(&old, Path::new("ostler.toml")).unwrap();
    let r = c.retention.as_ref().unwrap();
    assert_eq!((r.keep_last, r.keep_daily), (Some(3), Some(7)));
    assert!(r.keep_within.is_some());
    let warnings: Vec<String> = c.deprecations.iter().map(|d| d.to_string()).collect();
    insta::assert_snapshot!(warnings.join("\n"));
    // `config show` writes the new spelling.
    assert!(c.show().contains("keep_last = 3"), "{}", c.show());
}

#[test]
fn both_spellings_of_one_key_is_an_error() {
    let text = format!("{BASE}\n[retention]\nkeep-last = 3\nkeep_last = 4\n");
    let out = check(&text);
    assert!(out.contains("duplicate field `keep_last`"), "{out}");
}

mod fuzz {
    //! No text makes the config parser panic (issue 9): arbitrary strings, and
    //! documents shaped like ours with arbitrary values in the keys we read.

    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            "[a-z0-9 ./:_{}-]{0,12}".prop_map(|s| format!("{s:?}")),
            Just("\"10 parsecs\"".to_string()),
            Just("[]".to_string()),
            Just("{}".to_string()),
        ]
    }

    fn key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "name",
            "state_dir",
            "dir",
            "start",
            "port",
            "health",
            "stop_timeout",
            "kind",
            "path",
            "url",
            "keep_last",
            "keep-last",
            "keep-within",
            "timezone",
            "crash_limit",
            "backoff_max",
            "production",
            "gb-1",
            "cache",
            "password_env",
        ])
    }

    fn table() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "[service]",
            "[roles]",
            "[instances.gb-1]",
            "[instances.gb-1.database]",
            "[[instances.gb-1.stores]]",
            "[retention]",
            "[supervise]",
            "[repository]",
            "[[repository.copies]]",
            "[instances.\"../x\"]",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = check(&text);
        }

        #[test]
        fn documents_of_our_keys_never_panic(
            sections in proptest::collection::vec(
                (table(), proptest::collection::vec((key(), value()), 0..5)),
                0..6,
            ),
        ) {
            let mut text = String::new();
            for (table, entries) in sections {
                text += table;
                text += "\n";
                for (k, v) in entries {
                    text += &format!("{k} = {v}\n");
                }
            }
            let _ = check(&text);
        }
    }
}

/// Issue 11's example of `[[logs]]`, as written there.
const LOGS: &str = r#"
[[logs]]
path = "instances/gb-1/access.log"  # a glob is fine too
frequency = "daily"
rotate = 5
compress = true
delaycompress = true
notifempty = true
missingok = true
"#;

#[test]
fn the_issues_logs_example_is_accepted_with_a_default_and_an_instance_override() {
    let text = format!(
        "{BASE}\n[instances.gb-1.log_rotation]\nrotate = 10\ncompress_method = \"zstd\"\ncompress = true\n\n[log_rotation]\nsize = \"10M\"\ncopytruncate = true\n{LOGS}"
    );
    assert_eq!(check(&text), "ok");
    let config = Config::parse(&text, Path::new("ostler.toml")).unwrap();
    assert_eq!(config.logs.len(), 1);
    assert_eq!(config.logs[0].rotate, Some(5));
}

#[test]
fn rotation_keys_that_are_wrong_on_their_own_point_at_their_value() {
    let cases = [
        (
            "frequency = \"fortnightly\"",
            "a frequency logrotate has no word for",
        ),
        ("size = \"10 parsecs\"", "a size without a unit we know"),
        ("create = \"0999\"", "a mode that is not octal"),
        ("signal = \"HANGUP\"", "a signal that does not exist"),
        (
            "dateformat = \"-%Y%j\"",
            "a conversion logrotate cannot find back",
        ),
        ("compress_method = \"bzip2\"", "a compression we do not do"),
        ("rotate = -1", "a negative count"),
    ];
    let out: Vec<String> = cases
        .iter()
        .map(|(line, what)| {
            let key = line.split(' ').next().unwrap_or_default();
            let entry = match LOGS.lines().find(|l| l.starts_with(&format!("{key} "))) {
                Some(same) => LOGS.replace(same, line),
                None => LOGS.replace("rotate = 5", line),
            };
            let text = format!("{BASE}{entry}");
            format!("# {what}\n{}", check(&text))
        })
        .collect();
    insta::assert_snapshot!(out.join("\n\n"));
}

#[test]
fn rotation_keys_that_clash_or_are_out_of_place_are_refused_with_their_place() {
    let text = format!(
        "{BASE}{}\n[[logs]]\nfrequency = \"daily\"\n\n[[logs]]\npath = \"x.log\"\ninstance = \"gb-9\"\n\n[[logs]]\npath = \"y.log\"\nsignal = \"HUP\"\ncopytruncate = true\ncreate = \"0640\"\n\n[log_rotation]\npath = \"z.log\"\nifempty = true\nnotifempty = true\n\n[instances.gb-2.log_rotation]\ninstance = \"gb-1\"\n",
        LOGS.replace("rotate = 5", "rotate = 5\nsize = \"100k\"")
    );
    insta::assert_snapshot!(check(&text));
}

/// Issue 11's `[[jobs]]` example, and its `[service] timezone`.
const JOBS: &str = r#"
[[jobs]]
name = "hourly-backup"
schedule = "0 * * * *"
action = "backup"
instance = "production"

[[jobs]]
name = "janitor"
schedule = "FREQ=DAILY;BYHOUR=2;BYMINUTE=0"
command = "find tmp -mtime +1 -delete"
timeout = "10m"
overlap = "skip"
"#;

fn with_zone(text: &str) -> String {
    text.replacen(
        "name = \"guestbook\"",
        "name = \"guestbook\"\ntimezone = \"Europe/Zurich\"",
        1,
    )
}

#[test]
fn the_issues_jobs_example_is_accepted_in_the_services_zone() {
    let text = with_zone(&format!("{BASE}{JOBS}"));
    let config = Config::parse(&text, Path::new("ostler.toml")).unwrap();
    assert_eq!(config.jobs.len(), 2);
    let janitor = config.job("janitor").unwrap();
    assert_eq!(janitor.overlap, ostler_core::jobs::Overlap::Skip);
    assert_eq!(janitor.missed, ostler_core::jobs::Missed::RunOnce);
    assert_eq!(
        janitor.timeout.map(|d| d.0),
        Some(std::time::Duration::from_secs(600))
    );
    assert!(janitor.schedule.is_rule());
    let zone = janitor.zone(&config);
    assert_eq!(zone.iana_name(), Some("Europe/Zurich"));
    // 02:00 in Zurich, whatever the host's zone.
    let next = janitor
        .schedule
        .next_after("2026-06-01T12:00:00Z".parse().unwrap(), &zone)
        .unwrap();
    assert_eq!(next.to_string(), "2026-06-02T00:00:00Z");
}

#[test]
fn job_values_that_are_wrong_on_their_own_point_at_their_value() {
    let cases = [
        (
            "action = \"backup\"",
            "action = \"defragment\"",
            "an action we do not have",
        ),
        (
            "schedule = \"0 * * * *\"",
            "schedule = \"0 * * *\"",
            "a cron pattern with 4 fields",
        ),
        (
            "schedule = \"0 * * * *\"",
            "schedule = \"0 0 30 2 *\"",
            "a schedule that never fires",
        ),
        (
            "schedule = \"0 * * * *\"",
            "schedule = \"FREQ=DAILY;BYSETPOS=1\"",
            "a rule part we do not read",
        ),
        (
            "overlap = \"skip\"",
            "overlap = \"sometimes\"",
            "an overlap we do not know",
        ),
        (
            "timeout = \"10m\"",
            "timeout = \"ten minutes\"",
            "a timeout that is not a duration",
        ),
    ];
    let out: Vec<String> = cases
        .iter()
        .map(|(from, to, what)| {
            let text = format!("{BASE}{}", JOBS.replacen(from, to, 1));
            format!("# {what}\n{}", check(&text))
        })
        .collect();
    insta::assert_snapshot!(out.join("\n\n"));
}

#[test]
fn jobs_that_clash_or_name_what_is_not_there_are_refused_with_their_place() {
    let text = format!(
        "{}{JOBS}{}",
        BASE.replacen(
            "name = \"guestbook\"",
            "name = \"guestbook\"\ntimezone = \"Europe/Zürich\"",
            1
        ),
        r#"
[[jobs]]
name = "janitor"
schedule = "@daily"
command = "true"
timezone = "Mars/Olympus"

[[jobs]]
name = "both"
schedule = "@hourly"
action = "prune"
command = "true"

[[jobs]]
name = "neither"
schedule = "@hourly"

[[jobs]]
name = "no-such-instance"
schedule = "*/5 * * * *"
action = "sql"
instance = "gb-9"

[[jobs]]
name = "misplaced-keys"
schedule = "@weekly"
command = "true"
query = "DELETE FROM locks"
args = ["--all"]

[[jobs]]
name = "cleanup-without-path"
schedule = "@daily"
action = "cleanup"

[[jobs]]
name = "watch-without-command"
schedule = "@daily"
action = "watch"
on_change = "mail -s changed root"

[[jobs]]
name = "../up"
schedule = "@daily"
action = "verify"
"#
    );
    insta::assert_snapshot!(check(&text));
}
