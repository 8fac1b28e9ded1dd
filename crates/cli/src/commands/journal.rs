use ostler_core::plan::Plan;
use ostler_core::Result;

use crate::cli::Context;
use crate::plans;

/// Show the journal: every operation, who ran it, when, the plan it ran and each
/// command it ran.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this instance (or role).
    #[arg(long)]
    pub instance: Option<String>,
    /// How many entries (newest).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let instance = match &args.instance {
        Some(i) => Some(ostler.config.resolve(i)?),
        None => None,
    };
    let entries = ostler.state()?.journal(instance.as_deref(), args.limit)?;
    if ctx.json {
        super::print_json(&entries)?;
        return Ok(0);
    }
    for e in entries {
        let took = e
            .finished_at
            .map(|f| format!(" in {:.1}s", f.duration_since(e.started_at).as_secs_f64()))
            .unwrap_or_default();
        outln!(
            "#{} {} {} {} by {} (pid {}): {}{}",
            e.id,
            ctx.show_time(e.started_at),
            e.operation,
            e.instance.as_deref().unwrap_or("-"),
            e.who,
            e.pid,
            e.status,
            took
        );
        if let Some(d) = &e.detail {
            for line in d.lines() {
                outln!("    {line}");
            }
        }
        // A plan written by another ostler version may not read back: its JSON is
        // still in `--json`.
        if let Some(plan) = e.plan.and_then(|p| serde_json::from_value::<Plan>(p).ok()) {
            outln!("    plan: {}", plans::procedure_words(&plan.procedure));
            for s in &plan.steps {
                outln!("      {}", plans::step_line(&ostler, s));
            }
        }
        for c in e.commands {
            let end = match (c.exit_status, c.duration_ms, c.pid) {
                (Some(s), Some(ms), _) => format!("exit {s} ({ms} ms)"),
                (None, Some(ms), _) => format!("killed ({ms} ms)"),
                (_, None, Some(pid)) => format!("started as pid {pid}, end not seen"),
                (_, None, None) => "end not seen".into(),
            };
            outln!("    !!! CMD: {}  -> {end}", c.command);
        }
    }
    Ok(0)
}
