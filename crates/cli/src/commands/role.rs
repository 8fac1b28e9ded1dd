use ostler_core::{config, Error, Result};

use crate::cli::Context;

/// Show roles, or point one at an instance: `ostler role set production gb-2`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Point ROLE at INSTANCE (rewrites [roles] in the config, keeping its comments).
    Set { role: String, instance: String },
    /// List roles.
    List,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    match args.action.unwrap_or(Action::List) {
        Action::List => {
            if ctx.json {
                let map: std::collections::BTreeMap<_, _> = ostler
                    .config
                    .roles
                    .iter()
                    .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                    .collect();
                super::print_json(&map)?;
            } else {
                for (role, target) in &ostler.config.roles {
                    outln!("{role} -> {}", target.get_ref());
                }
            }
        }
        Action::Set { role, instance } => {
            if !ostler.config.instances.contains_key(&instance) {
                return Err(
                    Error::user(format!("no instance named `{instance}`")).with_hint(format!(
                        "instances: {}",
                        ostler.config.instance_names().join(", ")
                    )),
                );
            }
            let before = ostler.config.roles.get(&role).map(|t| t.get_ref().clone());
            config::write_role(&ostler.config.path, &role, &instance)?;
            let detail = match &before {
                Some(b) => format!("role {role}: {b} -> {instance}"),
                None => format!("role {role}: (none) -> {instance}"),
            };
            ostler.journal_event("role-set", Some(&instance), &detail)?;
            if !ctx.json {
                eprintln!("{detail}");
            }
        }
    }
    Ok(0)
}
