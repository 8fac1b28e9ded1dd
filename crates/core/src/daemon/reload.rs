//! Live reload (`ostler reload`, SIGHUP): the daemon reads its config file again and,
//! if it is valid, puts it in force without restarting anything.
//!
//! A config that does not load is refused with the same located errors as `ostler
//! config check`, and the daemon keeps the one it has: a typo must never leave a
//! running service unsupervised. A valid one is compared with the old ([`diff`]) and
//! swapped in whole ([`Handle::replace_ostler`]); what changed then applies the way a
//! restart would see it, never by restarting now:
//! - an added autostart instance is started (the supervisor hears
//!   [`Event::ConfigReloaded`]);
//! - a removed instance is no longer supervised, and left running;
//! - a changed instance's settings apply at its next start (a crash or an operator's);
//! - `[supervise]` applies at the next crash.
//!
//! A new `state_dir` is refused: the daemon's lock and control socket live in the old
//! one, so moving it needs a restart of the daemon.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::bus::Event;
use super::host::Handle;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::instance::Ostler;

/// What a reload changed, instance by instance and section by section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChanges {
    /// Instances the new config defines and the old did not.
    pub added: Vec<String>,
    /// Instances the old config defined and the new does not.
    pub removed: Vec<String>,
    /// Instances in both whose settings differ.
    pub changed: Vec<InstanceChange>,
    /// Service-level sections that differ (`supervise`, `retention`, `roles`...), by
    /// their name in the file.
    pub sections: Vec<String>,
}

/// One instance's changed settings, by their key in the file (`start`, `port`, `env`...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceChange {
    pub instance: String,
    pub settings: Vec<String>,
}

impl ConfigChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.sections.is_empty()
    }

    /// The event a reload publishes: the names of the instances it touched.
    pub fn event(&self) -> Event {
        Event::ConfigReloaded {
            added: self.added.clone(),
            removed: self.removed.clone(),
            changed: self.changed.iter().map(|c| c.instance.clone()).collect(),
        }
    }
}

/// One line, as the journal and `ostler reload` say it: "added gb-3; removed gb-2;
/// changed gb-1 (start, port) — applies at its next restart", or "nothing changed".
impl fmt::Display for ConfigChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("nothing changed");
        }
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("added {}", self.added.join(", ")));
        }
        if !self.removed.is_empty() {
            parts.push(format!(
                "removed {} (no longer supervised, left running)",
                self.removed.join(", ")
            ));
        }
        if !self.changed.is_empty() {
            let each: Vec<String> = self
                .changed
                .iter()
                .map(|c| format!("{} ({})", c.instance, c.settings.join(", ")))
                .collect();
            let when = if self.changed.len() == 1 {
                "applies at its next restart"
            } else {
                "each applies at its next restart"
            };
            parts.push(format!("changed {} — {when}", each.join(", ")));
        }
        if !self.sections.is_empty() {
            let names: Vec<String> = self.sections.iter().map(|s| format!("[{s}]")).collect();
            parts.push(format!("changed {}", names.join(", ")));
        }
        f.write_str(&parts.join("; "))
    }
}

/// What differs between `old` and `new`. Settings are compared as the config
/// serializes them (the values as written, defaults filled in), so every key of an
/// instance or section counts, including ones added to the config later.
pub fn diff(old: &Config, new: &Config) -> ConfigChanges {
    let mut changes = ConfigChanges::default();
    for (name, inst) in &new.instances {
        match old.instances.get(name) {
            None => changes.added.push(name.clone()),
            Some(before) => {
                let settings = differing_keys(&as_map(before), &as_map(inst));
                if !settings.is_empty() {
                    changes.changed.push(InstanceChange {
                        instance: name.clone(),
                        settings,
                    });
                }
            }
        }
    }
    changes.removed = old
        .instances
        .keys()
        .filter(|name| !new.instances.contains_key(*name))
        .cloned()
        .collect();
    let (mut old_sections, mut new_sections) = (as_map(old), as_map(new));
    old_sections.remove("instances");
    new_sections.remove("instances");
    changes.sections = differing_keys(&old_sections, &new_sections);
    changes
}

/// A value's serialized fields by key (an empty map for anything that is not a struct).
fn as_map<T: Serialize>(value: &T) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// The keys whose values differ, a key present on one side only included, sorted.
fn differing_keys(
    a: &serde_json::Map<String, serde_json::Value>,
    b: &serde_json::Map<String, serde_json::Value>,
) -> Vec<String> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// Reads the daemon's config file again and, if it loads and keeps the state dir,
/// puts it in force. Either way the reload is journaled (`reload`, ok with what
/// changed, or failed with the error); on success [`Event::ConfigReloaded`] is
/// published. On error nothing changes and the daemon keeps its config.
pub async fn reload(handle: &Handle) -> Result<ConfigChanges> {
    let path = handle.config_path().to_path_buf();
    let loaded = handle
        .blocking(move |old| {
            let config = Config::load(&path)?;
            if config.state_dir() != old.config.state_dir() {
                return Err(Error::user(format!(
                    "the new config moves state_dir from {} to {}: the daemon's lock and \
                     control socket live there, so that needs a restart of `ostler serve`",
                    old.config.state_dir().display(),
                    config.state_dir().display()
                )));
            }
            let changes = diff(&old.config, &config);
            // Said once, as `Ostler::load` does for every command.
            for d in &config.deprecations {
                old.reporter.warn("", &d.to_string());
            }
            let new = Ostler::new(config, old.reporter.clone(), old.interrupt.clone())
                .with_clock(old.clock.clone());
            Ok((new, changes))
        })
        .await;
    match loaded {
        Ok((new, changes)) => {
            handle.replace_ostler(new);
            let line = changes.to_string();
            tracing::info!(changes = %line, "config reloaded");
            journal(handle, "ok", line).await;
            handle.bus().publish(changes.event());
            Ok(changes)
        }
        Err(e) => {
            let text = crate::error::chain(&e).to_string();
            tracing::warn!(error = %text, "reload refused; the daemon keeps its current config");
            journal(handle, "failed", text).await;
            Err(e)
        }
    }
}

/// Journals the reload with its outcome, off the async threads, also while draining; a
/// journal that cannot be written is logged, not fatal (as [`Handle::journal`]).
async fn journal(handle: &Handle, status: &'static str, detail: String) {
    let ostler = handle.ostler();
    let written = tokio::task::spawn_blocking(move || {
        let state = ostler.state()?;
        let id = state.journal_begin("reload", None, Some(&detail))?;
        state.journal_end(id, status, None)
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %crate::error::chain(&e), "journal not written"),
        Err(e) => tracing::warn!(error = %e, "journal not written"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Config {
        Config::parse(text, Path::new("/srv/gb/ostler.toml")).unwrap()
    }

    fn instance(name: &str, port: u16, extra: &str) -> String {
        format!(
            "[instances.{name}]\ndir = \"{name}\"\nstart = \"./run --port {{port}}\"\nport = {port}\nautostart = true\n{extra}\n"
        )
    }

    const HEAD: &str = "[service]\nname = \"gb\"\n";

    #[test]
    fn the_same_config_changes_nothing() {
        let text = format!(
            "{HEAD}{}{}",
            instance("a", 8001, ""),
            instance("b", 8002, "")
        );
        let changes = diff(&parse(&text), &parse(&text));
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(changes.to_string(), "nothing changed");
    }

    #[test]
    fn added_removed_and_changed_instances_are_named_with_their_settings() {
        let old = parse(&format!(
            "{HEAD}{}{}",
            instance("gb-1", 8001, ""),
            instance("gb-2", 8002, "")
        ));
        let new = parse(&format!(
            "{HEAD}{}{}",
            instance("gb-1", 8011, "env = { GREETING = \"hi\" }"),
            instance("gb-3", 8003, "")
        ));
        let changes = diff(&old, &new);
        assert_eq!(
            changes,
            ConfigChanges {
                added: vec!["gb-3".into()],
                removed: vec!["gb-2".into()],
                changed: vec![InstanceChange {
                    instance: "gb-1".into(),
                    settings: vec!["env".into(), "port".into()],
                }],
                sections: vec![],
            }
        );
        assert_eq!(
            changes.to_string(),
            "added gb-3; removed gb-2 (no longer supervised, left running); \
             changed gb-1 (env, port) — applies at its next restart"
        );
        assert_eq!(
            changes.event(),
            Event::ConfigReloaded {
                added: vec!["gb-3".into()],
                removed: vec!["gb-2".into()],
                changed: vec!["gb-1".into()],
            }
        );
    }

    #[test]
    fn a_setting_written_out_as_its_default_is_no_change() {
        let old = parse(&format!("{HEAD}{}", instance("a", 8001, "")));
        let new = parse(&format!(
            "{HEAD}{}",
            instance("a", 8001, "stop_timeout = \"10s\"\nenv = {}")
        ));
        assert!(diff(&old, &new).is_empty());
    }

    #[test]
    fn an_optional_setting_added_or_dropped_is_a_change() {
        let old = parse(&format!(
            "{HEAD}{}",
            instance("a", 8001, "health = \"http://127.0.0.1:{port}/\"")
        ));
        let new = parse(&format!(
            "{HEAD}{}",
            instance("a", 8001, "build = \"make\"")
        ));
        assert_eq!(diff(&old, &new).changed[0].settings, ["build", "health"]);
    }

    #[test]
    fn service_level_sections_are_named() {
        let inst = instance("a", 8001, "");
        let old = parse(&format!("{HEAD}{inst}"));
        let new = parse(&format!(
            "{HEAD}{inst}[roles]\nproduction = \"a\"\n[supervise]\ncrash_limit = 2\n[retention]\nkeep_last = 3\n"
        ));
        let changes = diff(&old, &new);
        assert_eq!(changes.sections, ["retention", "roles", "supervise"]);
        assert!(changes.added.is_empty() && changes.changed.is_empty());
        assert_eq!(
            changes.to_string(),
            "changed [retention], [roles], [supervise]"
        );
    }

    /// A daemon's handle on a service in `dir` whose config file says `text`.
    fn handle(dir: &Path, text: &str) -> Handle {
        let path = dir.join("ostler.toml");
        std::fs::write(&path, text).unwrap();
        let ostler = Ostler::new(
            Config::load(&path).unwrap(),
            std::sync::Arc::new(crate::report::Silent),
            crate::report::Interrupt::new(),
        );
        Handle::new(ostler, &path)
    }

    fn last_journal(handle: &Handle) -> crate::state::JournalEntry {
        let state = handle.ostler().state().unwrap();
        state.journal(None, 1).unwrap().remove(0)
    }

    #[tokio::test]
    async fn a_refused_config_keeps_the_old_one_and_is_journaled_as_failed() {
        let dir = tempfile::tempdir().unwrap();
        let good = format!("{HEAD}{}", instance("a", 8001, ""));
        let handle = handle(dir.path(), &good);
        let mut events = handle.bus().subscribe();
        std::fs::write(
            handle.config_path(),
            format!("{good}[roles]\nproduction = \"nobody\"\n"),
        )
        .unwrap();

        let e = reload(&handle).await.unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Config);
        let text = e.to_string();
        assert!(
            text.contains("ostler.toml:10:")
                && text.contains("role `production` names instance `nobody`"),
            "{text}"
        );
        assert!(handle.ostler().config.roles.is_empty());
        let entry = last_journal(&handle);
        assert_eq!(
            (entry.operation.as_str(), entry.status.as_str()),
            ("reload", "failed")
        );
        assert!(entry.detail.unwrap_or_default().contains("nobody"));
        assert!(
            events.try_recv().is_err(),
            "a refused reload publishes nothing"
        );
    }

    #[tokio::test]
    async fn a_valid_config_is_put_in_force_journaled_and_published() {
        let dir = tempfile::tempdir().unwrap();
        let handle = handle(dir.path(), &format!("{HEAD}{}", instance("a", 8001, "")));
        let mut events = handle.bus().subscribe();
        std::fs::write(
            handle.config_path(),
            format!(
                "{HEAD}{}{}",
                instance("a", 8001, ""),
                instance("b", 8002, "")
            ),
        )
        .unwrap();

        let changes = reload(&handle).await.unwrap();
        assert_eq!(changes.added, ["b"]);
        assert_eq!(handle.ostler().config.instance_names(), ["a", "b"]);
        let entry = last_journal(&handle);
        assert_eq!(
            (
                entry.operation.as_str(),
                entry.status.as_str(),
                entry.detail.as_deref()
            ),
            ("reload", "ok", Some("added b"))
        );
        assert_eq!(events.try_recv().unwrap(), changes.event());
    }

    #[tokio::test]
    async fn a_config_moving_the_state_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let inst = instance("a", 8001, "");
        let handle = handle(dir.path(), &format!("{HEAD}{inst}"));
        std::fs::write(
            handle.config_path(),
            format!("{HEAD}state_dir = \"elsewhere\"\n{inst}"),
        )
        .unwrap();

        let e = reload(&handle).await.unwrap_err();
        assert!(e.to_string().contains("moves state_dir"), "{e}");
        assert_eq!(
            handle.ostler().config.state_dir(),
            dir.path().join(".ostler")
        );
        assert!(!dir.path().join("elsewhere").exists());
    }

    #[test]
    fn the_state_dir_of_a_refused_config_is_still_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ostler.toml");
        let inst = instance("a", 8001, "");
        std::fs::write(&path, format!("{HEAD}state_dir = \"st\"\n{inst}")).unwrap();
        let found = crate::config::state_dir_of(&path);
        assert_eq!(found, Some(Config::load(&path).unwrap().state_dir()));
        std::fs::write(&path, format!("{HEAD}{inst}typo = 1\n")).unwrap();
        assert!(Config::load(&path).is_err());
        assert_eq!(
            crate::config::state_dir_of(&path),
            Some(dir.path().join(".ostler"))
        );
        std::fs::write(&path, "[service\n").unwrap();
        assert_eq!(crate::config::state_dir_of(&path), None);
    }

    #[test]
    fn a_moved_state_dir_is_a_change_of_service() {
        let inst = instance("a", 8001, "");
        let old = parse(&format!("{HEAD}{inst}"));
        let new = parse(&format!("{HEAD}state_dir = \"elsewhere\"\n{inst}"));
        assert_eq!(diff(&old, &new).sections, ["service"]);
        assert_ne!(old.state_dir(), new.state_dir());
    }
}
