//! `ostler config check|show` as a user sees them.

use crate::support::*;

#[test]
fn config_check_reports_file_line_and_column_and_exits_non_zero() {
    let svc = Svc::new(&format!(
        "{}[roles]\nproduction = \"gb-9\"\n{}",
        service_header(""),
        guestbook_instance("gb-1", 18001, "")
    ));
    let before = std::fs::read_to_string(svc.path().join("ostler.toml")).unwrap();
    let out = svc.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ostler.toml:6:14: role `production` names instance `gb-9`"),
        "{err}"
    );
    // Nothing changed, no state created.
    assert_eq!(
        std::fs::read_to_string(svc.path().join("ostler.toml")).unwrap(),
        before
    );
    assert!(!svc.path().join(".ostler").exists());
}

#[test]
fn config_check_json_lists_problems() {
    let svc = Svc::new(&format!(
        "{}{}",
        service_header(""),
        guestbook_instance("gb-1", 0, "")
    ));
    let out = svc.run(&["config", "check", "--json"]);
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("port 0"));
    assert!(v["problems"][0]["line"].as_u64().unwrap() > 1);
}

#[test]
fn config_is_found_by_flag_env_and_cwd() {
    let svc = Svc::new(&format!(
        "{}{}",
        service_header(""),
        guestbook_instance("gb-1", 18002, "")
    ));
    assert!(svc
        .ok(&["config", "check"])
        .contains("ok (1 instances: gb-1)"));
    std::fs::rename(
        svc.path().join("ostler.toml"),
        svc.path().join("other.toml"),
    )
    .unwrap();
    let err = svc.fails(&["config", "check"]);
    assert!(err.contains("no ostler.toml in"), "{err}");
    svc.ok(&["--config", "other.toml", "config", "check"]);
    let out = svc
        .cmd(&["config", "check"])
        .env("OSTLER_CONFIG", "other.toml")
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn config_show_prints_defaults_and_never_a_password() {
    let svc = Svc::new(&format!(
        "{}[instances.pg]\ndir = \"pg\"\nstart = \"true\"\nport = 18003\n[instances.pg.database]\nkind = \"postgres\"\nurl = \"postgres://gb@127.0.0.1:5432/gb\"\npassword_file = \"pw\"\n",
        service_header("")
    ));
    std::fs::write(svc.path().join("pw"), "s3cret-pw\n").unwrap();
    let shown = svc.ok(&["config", "show"]);
    assert!(shown.contains("stop_timeout = \"10s\""), "{shown}");
    assert!(shown.contains("password_file = \"pw\""));
    assert!(!shown.contains("s3cret-pw"));
}
