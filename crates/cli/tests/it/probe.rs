//! `ostler probe`: the real binary as a Nagios plugin (its lines and exit codes), its
//! table and `--json`, a process probe on the sample service up then down, an unknown
//! name and a config error at its line.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use crate::support::*;

/// A loopback HTTP server answering every request `204 No Content`.
fn no_content_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        }
    });
    port
}

fn plugin(name: &str, code: i32) -> String {
    format!(
        "[[probes]]\nname = \"{name}\"\nkind = \"command\"\ncommand = \"echo 'CHECK {code} - said {code} | n={code};1;2'; exit {code}\"\n"
    )
}

fn code(out: &std::process::Output) -> i32 {
    out.status.code().expect("an exit code")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nagios_mode_prints_plugin_lines_and_exits_with_the_worst_code() {
    let port = no_content_server();
    let svc = Svc::new(&format!(
        "{}{}{}{}{}[[probes]]\nname = \"dav\"\nkind = \"http\"\nmethod = \"PUT\"\nurl = \"http://127.0.0.1:{port}/dav/put-test.txt\"\nbody_bytes = 1000\nexpect_status = 204\nwarn = \"3s\"\ncrit = \"10s\"\n",
        service_header(""),
        plugin("ok", 0),
        plugin("warning", 1),
        plugin("critical", 2),
        plugin("unknown", 3),
    ));
    for (name, want) in [("ok", 0), ("warning", 1), ("critical", 2), ("unknown", 3)] {
        let out = svc.run(&["probe", "--nagios", name]);
        assert_eq!(code(&out), want, "{name}: {out:?}");
        assert_eq!(
            stdout(&out),
            format!("CHECK {want} - said {want} | n={want};1;2\n")
        );
    }
    let out = svc.run(&["probe", "--nagios", "dav"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let line = stdout(&out);
    assert!(
        line.starts_with("HTTP OK - 204 No Content in 0.0"),
        "{line}"
    );
    assert!(
        line.contains(" | time=0") && line.contains("s;3;10;0 size=0B;;;0"),
        "{line}"
    );
    // All of them: one line each, in config order; the worst is CRITICAL.
    let out = svc.run(&["probe", "--nagios"]);
    assert_eq!(code(&out), 2, "{out:?}");
    assert_eq!(stdout(&out).lines().count(), 5);
    // UNKNOWN and WARNING together: WARNING is worse.
    assert_eq!(
        code(&svc.run(&["probe", "--nagios", "unknown", "warning", "ok"])),
        1
    );
}

#[test]
fn the_table_and_json_show_each_result() {
    let svc = Svc::new(&format!(
        "{}{}{}",
        service_header(""),
        plugin("fine", 0),
        plugin("bad", 2)
    ));
    let out = svc.run(&["probe"]);
    assert_eq!(code(&out), 2);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("NAME  KIND     STATUS    TIME"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("fine  command  OK") && lines[1].ends_with("CHECK 0 - said 0"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("bad   command  CRITICAL") && lines[2].ends_with("CHECK 2 - said 2"),
        "{text}"
    );
    let out = svc.run(&["--json", "probe", "bad"]);
    assert_eq!(code(&out), 2);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let results = v.as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["name"], "bad");
    assert_eq!(results[0]["kind"], "command");
    assert_eq!(results[0]["status"], "critical");
    assert_eq!(results[0]["summary"], "CHECK 2 - said 2");
    assert_eq!(results[0]["perfdata"][0]["label"], "n");
    assert_eq!(results[0]["perfdata"][0]["warn"], "1");
    assert_eq!(results[0]["line"], "CHECK 2 - said 2 | n=2;1;2");
    assert!(results[0]["duration"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_process_probe_follows_the_sample_service_up_and_down() {
    let port = free_port();
    let svc = Svc::new(&format!(
        "{}{}[[probes]]\nname = \"gb-up\"\nkind = \"process\"\ninstance = \"production\"\n",
        service_header("[roles]\nproduction = \"gb-1\""),
        guestbook_instance("gb-1", port, "")
    ));
    let out = svc.run(&["probe", "--nagios", "gb-up"]);
    assert_eq!(code(&out), 2, "{out:?}");
    assert_eq!(
        stdout(&out),
        "PROCESS CRITICAL - gb-1 is not running (stopped)\n"
    );
    svc.ok(&["build,start", "gb-1"]);
    let pid = svc.pid("gb-1").expect("gb-1 runs");
    let out = svc.run(&["probe", "--nagios", "gb-up"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(
        stdout(&out),
        format!("PROCESS OK - gb-1 is running, pid {pid}\n")
    );
    svc.ok(&["stop", "gb-1"]);
    let out = svc.run(&["probe", "--nagios", "gb-up"]);
    assert_eq!(code(&out), 2, "{out:?}");
}

#[test]
fn an_unknown_name_is_an_error_naming_it_and_the_known_ones() {
    let svc = Svc::new(&format!(
        "{}{}{}",
        service_header(""),
        plugin("a", 0),
        plugin("b", 0)
    ));
    let out = svc.run(&["probe", "a", "nope"]);
    assert_eq!(code(&out), 2, "a user error: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error: no probe named `nope`"), "{err}");
    assert!(err.contains("hint: probes: a, b"), "{err}");
    assert_eq!(stdout(&out), "", "nothing ran");
    // As a Nagios command: UNKNOWN, on stdout.
    let out = svc.run(&["probe", "--nagios", "nope"]);
    assert_eq!(code(&out), 3);
    assert_eq!(stdout(&out), "UNKNOWN - no probe named `nope`\n");
}

#[test]
fn a_config_error_is_reported_at_its_line() {
    let svc = Svc::new(&format!(
        "{}[[probes]]\nname = \"web\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nwarn = \"fast\"\n",
        service_header("")
    ));
    let out = svc.run(&["probe"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 78, "{err}");
    let path = svc.path().join("ostler.toml");
    assert!(
        err.contains(&format!(
            "{}:9:8: probe `web`: `warn`: threshold `fast` is not a Nagios range",
            path.display()
        )),
        "{err}"
    );
    let out = svc.run(&["probe", "--nagios"]);
    assert_eq!(code(&out), 3);
    assert!(stdout(&out).starts_with("UNKNOWN - "), "{}", stdout(&out));
}

#[test]
fn a_probe_job_runs_the_named_probe_and_fails_when_it_is_not_ok() {
    let job = |name: &str, probe: &str| {
        format!("[[jobs]]\nname = \"{name}\"\nschedule = \"@daily\"\naction = \"probe\"\ninstance = \"gb-1\"\nargs = [\"{probe}\"]\n")
    };
    let svc = Svc::new(&format!(
        "{}{}{}{}{}{}",
        service_header(""),
        guestbook_instance("gb-1", free_port(), ""),
        plugin("fine", 0),
        plugin("bad", 2),
        job("check-fine", "fine"),
        job("check-bad", "bad"),
    ));
    let out = svc.run(&["jobs", "exec", "check-fine"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout(&out), "CHECK 0 - said 0 | n=0;1;2\n");
    let out = svc.run(&["jobs", "exec", "check-bad"]);
    assert_eq!(code(&out), 1, "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("probe `bad`: CHECK 2 - said 2 | n=2;1;2"),
        "{err}"
    );
    // A job naming a probe that is not there: the config is refused, at the job.
    let svc = Svc::new(&format!(
        "{}{}{}{}",
        service_header(""),
        guestbook_instance("gb-1", free_port(), ""),
        plugin("fine", 0),
        job("check-gone", "gone"),
    ));
    let out = svc.run(&["jobs", "exec", "check-gone"]);
    assert_eq!(code(&out), 78, "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "job `check-gone`: its args name probe `gone`, which is not defined (probes: fine)"
        ),
        "{err}"
    );
}

#[test]
fn the_daemon_runs_probes_on_their_interval_and_logs_the_hard_change() {
    let svc = Svc::new(&format!(
        "{}[[probes]]\nname = \"down\"\nkind = \"command\"\ncommand = \"echo run >> runs; echo 'CHECK 2 - down'; exit 2\"\ninterval = \"1s\"\nretries = 2\n",
        service_header("")
    ));
    let daemon = svc
        .cmd(&["serve", "--log-format", "json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let runs = || std::fs::read_to_string(svc.path().join("runs")).map_or(0, |t| t.lines().count());
    wait_for(std::time::Duration::from_secs(20), "three checks", || {
        runs() >= 3
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = daemon.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let lines: Vec<serde_json::Value> = err
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let changes: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["to"] == "critical")
        .collect();
    assert_eq!(
        changes.len(),
        1,
        "one hard change, after two results:\n{err}"
    );
    let change = changes[0];
    assert_eq!(change["level"], "WARN", "{change}");
    assert_eq!(change["fields"]["probe"], "down", "{change}");
    assert_eq!(change["fields"]["from"], "ok", "{change}");
    assert_eq!(change["fields"]["message"], "CHECK 2 - down", "{change}");
    let soft = lines
        .iter()
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("soft critical"))
        })
        .count();
    assert_eq!(soft, 1, "the first result was soft:\n{err}");
}
