//! `ostler logs scan` as a user sees it: on a copy of AMY's logs, in a directory with
//! no ostler.toml (logs are read wherever they were copied to).

use crate::support::*;

/// Two days of AMY's API polling (written in the server's -06:00) around the moment
/// the DC tag was deleted, rotated into access.log.1 and access.log, with one bad
/// line and some steady noise.
fn write_amy_logs(svc: &Svc) {
    let start = 1_459_800_000; // 2016-04-04 16:00:00 -04:00
    let jump = 1_459_976_640; // 2016-04-06 17:04:00 -04:00
    let stamp = |t: i64| {
        let z = jiff::Timestamp::from_second(t)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(-6)));
        z.strftime("%d/%b/%Y:%H:%M:%S %z").to_string()
    };
    let (mut old, mut new) = (String::new(), String::new());
    let mut t = start + 4 * 60 + 10;
    while t < start + 3 * 86_400 {
        let dc = if t < jump { 17806 } else { 261521 };
        let out = if t < jump - 600 { &mut old } else { &mut new };
        for (i, (path, size)) in [
            ("/api/v1/events/?tag=SWC", 231344),
            ("/api/v1/events/?tag=DC", dc),
        ]
        .into_iter()
        .enumerate()
        {
            out.push_str(&format!(
                "192.0.2.10 - - [{}] \"GET {path} HTTP/1.1\" 200 {size} \"-\" \"python-requests/2.9.1\"\n",
                stamp(t + i as i64)
            ));
        }
        out.push_str(&format!(
            "2001:db8::7 - - [{}] \"GET /workshops/ HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 \\\"x\\\"\"\n",
            stamp(t + 60),
            12000 + (t % 7) * 100
        ));
        t += 1800;
    }
    old.push_str("not a log line\n");
    std::fs::write(svc.path().join("access.log.1"), old).unwrap();
    std::fs::write(svc.path().join("access.log"), new).unwrap();
}

fn svc_without_config() -> Svc {
    let svc = Svc::new("");
    std::fs::remove_file(svc.path().join("ostler.toml")).unwrap();
    write_amy_logs(&svc);
    svc
}

#[test]
fn logs_scan_names_both_times_with_offsets_and_both_sizes_without_a_config() {
    let svc = svc_without_config();
    let out = svc.ok(&[
        "--tz",
        "America/New_York",
        "logs",
        "scan",
        "access.log",
        "access.log.1",
    ]);
    assert!(out.contains("1 strong change"), "{out}");
    assert!(out.contains("GET /api/v1/events/?tag=DC"), "{out}");
    assert!(
        out.contains("17806 -> 261521 bytes (14.69x larger)"),
        "{out}"
    );
    assert!(
        out.contains("before  2016-04-06 16:34:11 -04:00  access.log.1:"),
        "{out}"
    );
    assert!(
        out.contains("after   2016-04-06 17:04:11 -04:00  access.log:"),
        "{out}"
    );
    assert!(out.contains("malformed access.log.1:"), "{out}");
    // Files are listed in time order, not as given.
    let (first, second) = (
        out.find("access.log.1  ").unwrap(),
        out.find("access.log   ").unwrap(),
    );
    assert!(first < second, "{out}");

    // The same moment in the server's zone and in the default (TZ=UTC).
    let out = svc.ok(&[
        "--tz",
        "Etc/GMT+6",
        "logs",
        "scan",
        "access.log",
        "access.log.1",
    ]);
    assert!(out.contains("2016-04-06 15:04:11 -06:00"), "{out}");
    let out = svc.ok(&["logs", "scan", "access.log", "access.log.1"]);
    assert!(out.contains("2016-04-06 21:04:11 +00:00"), "{out}");
}

#[test]
fn logs_scan_json_parses() {
    let svc = svc_without_config();
    let out = svc.ok(&["logs", "scan", "--json", "access.log", "access.log.1"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let c = &v["changes"][0];
    assert_eq!(c["url"], "GET /api/v1/events/?tag=DC");
    assert_eq!(c["kind"], "size");
    assert_eq!(
        (c["before"]["size"].as_u64(), c["after"]["size"].as_u64()),
        (Some(17806), Some(261521))
    );
    assert_eq!(c["after"]["time"], "2016-04-06T21:04:11Z");
    assert_eq!(v["changes"].as_array().unwrap().len(), 1);
    assert_eq!(v["more"], 0);
    assert_eq!(v["summary"]["malformed"], 1);
    assert_eq!(v["summary"]["files"][0]["path"], "access.log.1");

    let out = svc.ok(&[
        "logs",
        "scan",
        "--json",
        "--limit",
        "0",
        "access.log",
        "access.log.1",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["changes"].as_array().unwrap().len(), v["more"].as_u64()),
        (0, Some(1))
    );
}

#[test]
fn logs_scan_url_prints_a_condensed_timeline() {
    let svc = svc_without_config();
    let out = svc.ok(&[
        "--tz",
        "America/New_York",
        "logs",
        "scan",
        "access.log",
        "access.log.1",
        "--url",
        "tag=DC",
    ]);
    assert!(
        out.contains("GET /api/v1/events/?tag=DC: 144 requests in 2 runs"),
        "{out}"
    );
    let runs: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" bytes  192.0.2.10"))
        .collect();
    assert_eq!(runs.len(), 2, "{out}");
    assert!(
        runs[0].contains("2016-04-04 16:04:11 -04:00 .. 2016-04-06 16:34:11 -04:00"),
        "{out}"
    );
    assert!(runs[0].contains("98x  200       17806 bytes"), "{out}");
    assert!(runs[1].contains("46x  200      261521 bytes"), "{out}");
    assert!(!out.contains("tag=SWC"), "{out}");

    let out = svc.ok(&["logs", "scan", "access.log", "--url", "/api/*", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["urls"].as_array().unwrap().len(), 2, "{out}");
}

#[test]
fn logs_scan_errors_name_the_file() {
    let svc = svc_without_config();
    let err = svc.fails(&["logs", "scan", "access.log", "access.log.9.gz"]);
    assert!(err.contains("access.log.9.gz"), "{err}");
    let err = svc.fails(&["logs", "scan", "access.log", "--min-ratio", "0.5"]);
    assert!(err.contains("ratio"), "{err}");
}
