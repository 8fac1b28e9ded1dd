//! `ostler demo`: the newcomer's first run. Makes a working directory with a config
//! for two instances of the bundled sample service (guestbook, SQLite), builds both,
//! starts `gb-1` (the production role), puts a few entries in it, backs it up, and prints what to
//! try next.

use std::path::{Path, PathBuf};

use ostler_core::guard::{Confirm, Danger};
use ostler_core::plan;
use ostler_core::{Error, Ostler, Result};

use crate::cli::Context;

/// Make a working demo of the bundled sample service (guestbook on SQLite) and start it.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to put it.
    #[arg(default_value = "ostler-demo")]
    pub dir: PathBuf,
    /// First port to use (gb-1; gb-2 gets the next free one).
    #[arg(long, default_value_t = 18081, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
}

struct No;
impl Confirm for No {
    fn confirm(&self, _: &Danger) -> bool {
        false
    }
}

fn guestbook_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Error::io("finding ostler's own path", e))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    for candidate in [dir.join("guestbook"), dir.join("../guestbook")] {
        if candidate.is_file() {
            return Ok(candidate.canonicalize().unwrap_or(candidate));
        }
    }
    Err(Error::user(format!(
        "the sample service `guestbook` is not built next to {}",
        exe.display()
    ))
    .with_hint("build the whole workspace: cargo build --release --workspace"))
}

/// The first free port among the 200 from `start` up, never past 65535.
fn free_port_from(start: u16, skip: &[u16]) -> Option<u16> {
    (start..=u16::MAX)
        .take(200)
        .find(|p| !skip.contains(p) && !ostler_core::process::port_in_use(*p))
}

/// Ports for gb-1 and gb-2, both from `start` up; an error rather than a wrap to 0.
fn demo_ports(start: u16) -> Result<[u16; 2]> {
    let none = |instance: &str, from: u16| {
        Error::user(format!(
            "no free port for {instance} from {from} up to 65535"
        ))
        .with_hint("pass a lower --port")
    };
    let p1 = free_port_from(start, &[]).ok_or_else(|| none("gb-1", start))?;
    let p2 = p1
        .checked_add(1)
        .and_then(|from| free_port_from(from, &[p1]))
        .ok_or_else(|| none("gb-2", p1.saturating_add(1)))?;
    Ok([p1, p2])
}

pub fn config_text(guestbook: &Path, ports: [u16; 2]) -> String {
    let mut text = String::from(
        "# ostler demo: two instances of the bundled sample service on SQLite.\n\
         [service]\nname = \"guestbook\"\nstate_dir = \".ostler\"\n\n\
         [repository]\npath = \"backups\"\n\n\
         [roles]\nproduction = \"gb-1\"\n",
    );
    for (i, port) in ports.iter().enumerate() {
        let name = format!("gb-{}", i + 1);
        text += &format!(
            "\n[instances.{name}]\n\
             dir = \"instances/{name}\"\n\
             build = \"cp {gb} .\"\n\
             start = \"./guestbook --port {{port}} --db {{db}} --store uploads --access-log access.log\"\n\
             port = {port}\n\
             health = \"http://127.0.0.1:{{port}}/health\"\n\
             stop_timeout = \"10s\"\n\
             autostart = {auto}\n\
             logs = [\"access.log\"]\n\
             env = {{ RUST_LOG = \"info\" }}\n\n\
             [instances.{name}.database]\nkind = \"sqlite\"\npath = \"data.db\"\n\n\
             [[instances.{name}.stores]]\nname = \"uploads\"\npath = \"uploads\"\n",
            gb = guestbook.display(),
            auto = i == 0,
        );
    }
    text += "\n# `ostler serve` runs these; `ostler jobs` shows them.\n\
             [[jobs]]\nname = \"hourly-backup\"\nschedule = \"0 * * * *\"\naction = \"backup\"\ninstance = \"production\"\n\n\
             [[jobs]]\nname = \"rotate-logs\"\nschedule = \"@hourly\"\naction = \"rotate-logs\"\n";
    text += &format!(
        "\n# `ostler serve` checks these and raises alerts (`ostler alerts`); `ostler probe`\n\
         # runs them once. Add [[alerts.channels]] to be told (docs/ALERTS.md).\n\
         [[probes]]\nname = \"production-up\"\nkind = \"process\"\ninstance = \"production\"\n\n\
         [[probes]]\nname = \"production-health\"\nkind = \"http\"\ninstance = \"production\"\n\
         url = \"http://127.0.0.1:{}/health\"\nwarn = \"1s\"\ncrit = \"5s\"\n",
        ports[0]
    );
    text
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let dir = std::env::current_dir()
        .map_err(|e| Error::io("reading the current directory", e))?
        .join(&args.dir);
    let config_path = dir.join("ostler.toml");
    if !config_path.exists() {
        let gb = guestbook_binary()?;
        let ports = demo_ports(args.port)?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        std::fs::write(&config_path, config_text(&gb, ports))
            .map_err(|e| Error::io(format!("writing {}", config_path.display()), e))?;
        eprintln!("wrote {}", config_path.display());
    } else {
        eprintln!("using the existing {}", config_path.display());
    }
    let ostler = Ostler::load(&config_path, ctx.reporter(), ctx.interrupt.clone())?;
    // gb-1 is production: a demo run again starts it if needed but never rebuilds it
    // (the guard would rightly ask first).
    let gb1 = ostler.instance("gb-1")?;
    let running = ostler_core::ops::status(&ostler, &gb1)?.state == "running";
    let built = gb1.dir.join("guestbook").is_file();
    let chain = match (running, built) {
        (true, _) => None,
        (false, true) => Some("start"),
        (false, false) => Some("build,start"),
    };
    if let Some(chain) = chain {
        let plan = plan::chain::plan(&ostler, chain, "gb-1")?;
        plan::chain::execute(&ostler, &plan, &No, &mut |o| {
            eprintln!("{}", crate::plans::outcome(o))
        })?;
    }
    plan::chain::execute(
        &ostler,
        &plan::chain::plan(&ostler, "build", "gb-2")?,
        &No,
        &mut |o| eprintln!("{}", crate::plans::outcome(o)),
    )?;
    seed_entries(gb1.port)?;
    // ostler's main job: a consistent backup of the running service.
    let backup = ostler_core::backup::procedures::take(&ostler, "gb-1", Some("demo"))?;
    eprintln!(
        "backup {} of gb-1 taken while it serves: {} tables, {} newly stored",
        backup.id,
        backup
            .database
            .as_ref()
            .map(|d| d.tables.len())
            .unwrap_or(0),
        super::human_bytes(backup.new_bytes)
    );
    let cfg = config_path.display();
    outln!(
        "\nThe demo is running: guestbook instance gb-1 (role production) on http://127.0.0.1:{port}/entries\n\
         \nTry next (from {dir}, or with --config {cfg}):\n\
         \x20 ostler status\n\
         \x20 curl -s http://127.0.0.1:{port}/entries\n\
         \x20 ostler -v restart gb-1\n\
         \x20 ostler sto,pri production          # abbreviated chain on a role\n\
         \x20 ostler backups --tables             # the backup just taken, table by table\n\
         \x20 ostler backup gb-1 && ostler verify --all\n\
         \x20 ostler restore gb-1 --into gb-2     # a copy of production in gb-2\n\
         \x20 ostler journal\n\
         \x20 ostler jobs                         # the hourly backup: next run, last result, runs per state\n\
         \x20 ostler probe --nagios               # the probes once, as Nagios plugin lines (exit 0/1/2/3)\n\
         \x20 ostler alerts                       # what the daemon's probes and jobs raised\n\
         \x20 ostler jobs run hourly-backup       # now (through the daemon when it runs)\n\
         \x20 ostler serve                        # supervise: kill -9 gb-1's pid and watch it come back\n\
         \x20 ostler stop gb-1                    # when you are done\n",
        port = gb1.port,
        dir = dir.display(),
    );
    Ok(0)
}

fn seed_entries(port: u16) -> Result<()> {
    let base = format!("http://127.0.0.1:{port}");
    let existing = ureq_get(&format!("{base}/entries"))?;
    if existing.trim() != "[]" {
        return Ok(());
    }
    for (author, message, tags) in [
        ("ada", "Hello from the ostler demo", r#"["demo","hello"]"#),
        (
            "grace",
            "Backups are only real once restored",
            r#"["demo","ops"]"#,
        ),
        ("linus", "Upgrades without fear", r#"["ops"]"#),
    ] {
        let body = format!(r#"{{"author":"{author}","message":"{message}","tags":{tags}}}"#);
        ureq_post(&format!("{base}/entries"), &body)?;
    }
    Ok(())
}

fn ureq_get(url: &str) -> Result<String> {
    ureq::get(url)
        .call()
        .map_err(|e| Error::failed(format!("GET {url}: {e}")))?
        .into_string()
        .map_err(|e| Error::io(format!("reading {url}"), e))
}

fn ureq_post(url: &str, body: &str) -> Result<String> {
    ureq::post(url)
        .set("Content-Type", "application/json")
        .send_string(body)
        .map_err(|e| Error::failed(format!("POST {url}: {e}")))?
        .into_string()
        .map_err(|e| Error::io(format!("reading {url}"), e))
}
