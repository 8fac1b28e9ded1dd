//! The guestbook's data: entries, tags and the links between them.
//!
//! Written once against `Db`, so the three engines run the same statements. The one
//! spot where SQL differs ("insert this tag unless it exists") asks the engine.
//! Deleting a tag relies on the schema's `ON DELETE CASCADE` to remove its
//! `entry_tags` rows, exactly like the AMY bug: the entries survive, quietly
//! untagged, and only a backup still knows which of them carried the tag.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::db::{Db, Row, TxMode, Value};
use crate::dburl::Engine;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub id: i64,
    pub author: String,
    pub message: String,
    pub email: Option<String>,
    pub created_at: String,
    /// Tag names, sorted.
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tag {
    pub id: i64,
    pub name: String,
    /// How many entries carry this tag.
    pub entries: i64,
}

/// A validated `POST /entries` body.
#[derive(Clone, Debug)]
pub struct NewEntry {
    pub author: String,
    pub message: String,
    pub email: Option<String>,
    pub tags: Vec<String>,
}

/// Which entries to load.
enum Filter<'a> {
    All,
    Id(i64),
    Tag(&'a str),
}

impl Filter<'_> {
    /// A `WHERE` clause on the entries table, aliased `e`, and its parameters.
    fn clause(&self) -> (&'static str, Vec<Value>) {
        match self {
            Filter::All => ("", vec![]),
            Filter::Id(id) => ("WHERE e.id = ?", vec![(*id).into()]),
            Filter::Tag(name) => (
                "WHERE e.id IN (SELECT x.entry_id FROM entry_tags x \
                 JOIN tags y ON y.id = x.tag_id WHERE y.name = ?)",
                vec![(*name).into()],
            ),
        }
    }
}

fn load_entries(db: &mut Db, filter: Filter<'_>) -> Result<Vec<Entry>> {
    db.transaction(TxMode::Read, |db| {
        let (clause, params) = filter.clause();
        let rows = db.query(
            &format!(
                "SELECT e.id, e.author, e.message, e.email, e.created_at \
                 FROM entries e {clause} ORDER BY e.id"
            ),
            &params,
        )?;
        let links = db.query(
            &format!(
                "SELECT et.entry_id, t.name FROM entry_tags et \
                 JOIN tags t ON t.id = et.tag_id \
                 JOIN entries e ON e.id = et.entry_id {clause}"
            ),
            &params,
        )?;
        let mut tags: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for mut link in links {
            let name = take(&mut link, 1).text()?;
            tags.entry(link[0].int()?).or_default().push(name);
        }
        rows.into_iter()
            .map(|row| {
                let mut entry = entry_from_row(row)?;
                entry.tags = tags.remove(&entry.id).unwrap_or_default();
                // Sorted here, not in SQL: collations differ between engines.
                entry.tags.sort();
                Ok(entry)
            })
            .collect()
    })
}

fn take(row: &mut Row, i: usize) -> Value {
    std::mem::replace(&mut row[i], Value::Null)
}

fn entry_from_row(mut row: Row) -> Result<Entry> {
    Ok(Entry {
        id: row[0].int()?,
        author: take(&mut row, 1).text()?,
        message: take(&mut row, 2).text()?,
        email: take(&mut row, 3).opt_text()?,
        created_at: take(&mut row, 4).text()?,
        tags: vec![],
    })
}

pub fn list_entries(db: &mut Db) -> Result<Vec<Entry>> {
    load_entries(db, Filter::All)
}

pub fn get_entry(db: &mut Db, id: i64) -> Result<Option<Entry>> {
    Ok(load_entries(db, Filter::Id(id))?.pop())
}

/// Creates the entry and any of its tags that do not exist yet, all or nothing.
pub fn create_entry(db: &mut Db, new: &NewEntry, created_at: &str) -> Result<Entry> {
    let id = db.transaction(TxMode::Write, |db| {
        let id = db.insert(
            "INSERT INTO entries (author, message, email, created_at) VALUES (?, ?, ?, ?)",
            &[
                new.author.as_str().into(),
                new.message.as_str().into(),
                new.email.as_deref().into(),
                created_at.into(),
            ],
        )?;
        let mut names: Vec<&str> = new.tags.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let tag_id = tag_for_linking(db, name)?;
            db.execute(
                "INSERT INTO entry_tags (entry_id, tag_id) VALUES (?, ?)",
                &[id.into(), tag_id.into()],
            )?;
        }
        Ok(id)
    })?;
    get_entry(db, id)?.context("new entry vanished")
}

pub fn delete_entry(db: &mut Db, id: i64) -> Result<bool> {
    let n = db.transaction(TxMode::Write, |db| {
        db.execute("DELETE FROM entries WHERE id = ?", &[id.into()])
    })?;
    Ok(n > 0)
}

/// Every tag with its entry count, sorted by name.
pub fn list_tags(db: &mut Db) -> Result<Vec<Tag>> {
    let rows = db.query(
        "SELECT t.id, t.name, COUNT(et.entry_id) FROM tags t \
         LEFT JOIN entry_tags et ON et.tag_id = t.id GROUP BY t.id, t.name",
        &[],
    )?;
    let mut tags = rows
        .into_iter()
        .map(|mut row| {
            Ok(Tag {
                id: row[0].int()?,
                name: take(&mut row, 1).text()?,
                entries: row[2].int()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    tags.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tags)
}

/// Creates a tag; `None` if one with that name already exists.
pub fn create_tag(db: &mut Db, name: &str) -> Result<Option<Tag>> {
    db.transaction(TxMode::Write, |db| {
        // Looking first spares a sequence value: a conflicting insert uses one up.
        if tag_id(db, name)?.is_some() || insert_tag_if_missing(db, name)? == 0 {
            return Ok(None);
        }
        let id = tag_id(db, name)?.context("new tag vanished")?;
        Ok(Some(Tag {
            id,
            name: name.to_string(),
            entries: 0,
        }))
    })
}

/// Deletes a tag and, through `ON DELETE CASCADE`, every link to it.
pub fn delete_tag(db: &mut Db, name: &str) -> Result<bool> {
    let n = db.transaction(TxMode::Write, |db| {
        db.execute("DELETE FROM tags WHERE name = ?", &[name.into()])
    })?;
    Ok(n > 0)
}

/// The entries carrying a tag; `None` if there is no such tag.
pub fn entries_with_tag(db: &mut Db, name: &str) -> Result<Option<Vec<Entry>>> {
    if tag_id(db, name)?.is_none() {
        return Ok(None);
    }
    load_entries(db, Filter::Tag(name)).map(Some)
}

fn tag_id(db: &mut Db, name: &str) -> Result<Option<i64>> {
    let rows = db.query("SELECT id FROM tags WHERE name = ?", &[name.into()])?;
    rows.first().map(|row| row[0].int()).transpose()
}

/// The id of tag `name`, created if missing, locked so that a concurrent
/// `DELETE /tags/{name}` waits until the new link is committed (and then removes it
/// by cascade, instead of the link insert failing its foreign key check).
///
/// The order matters on MySQL: a locking read of a name that does not exist takes
/// a gap lock, and two requests creating the same new tag would then deadlock on
/// their inserts. So a plain read comes first and the locking read only after the
/// row is known to exist. The locking read also sees rows committed after this
/// transaction's snapshot, which a plain read under REPEATABLE READ would not.
fn tag_for_linking(db: &mut Db, name: &str) -> Result<i64> {
    let locking = match db.engine() {
        Engine::Sqlite => "SELECT id FROM tags WHERE name = ?",
        Engine::Postgres => "SELECT id FROM tags WHERE name = ? FOR KEY SHARE",
        Engine::Mysql => "SELECT id FROM tags WHERE name = ? LOCK IN SHARE MODE",
    };
    let locked = |db: &mut Db| -> Result<Option<i64>> {
        let rows = db.query(locking, &[name.into()])?;
        rows.first().map(|row| row[0].int()).transpose()
    };
    if tag_id(db, name)?.is_some() {
        if let Some(id) = locked(db)? {
            return Ok(id);
        }
    }
    insert_tag_if_missing(db, name)?;
    locked(db)?.with_context(|| format!("tag {name:?} vanished while tagging"))
}

/// Returns 1 if the tag was created, 0 if it was there already.
fn insert_tag_if_missing(db: &mut Db, name: &str) -> Result<u64> {
    let sql = match db.engine() {
        Engine::Sqlite | Engine::Postgres => {
            "INSERT INTO tags (name) VALUES (?) ON CONFLICT (name) DO NOTHING"
        }
        // Only safe because names are validated first: IGNORE also hides truncation.
        Engine::Mysql => "INSERT IGNORE INTO tags (name) VALUES (?)",
    };
    db.execute(sql, &[name.into()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dburl::DbTarget;

    fn sqlite() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::connect(&DbTarget::Sqlite(dir.path().join("gb.db"))).unwrap();
        crate::migrations::migrate(&mut db, crate::migrations::LATEST).unwrap();
        (dir, db)
    }

    fn new(author: &str, tags: &[&str]) -> NewEntry {
        NewEntry {
            author: author.into(),
            message: format!("hello from {author}"),
            email: None,
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn entries_carry_sorted_deduplicated_tags() {
        let (_dir, mut db) = sqlite();
        let e = create_entry(&mut db, &new("ann", &["SWC", "DC", "SWC"]), "t0").unwrap();
        assert_eq!(e.tags, ["DC", "SWC"]);
        assert_eq!(get_entry(&mut db, e.id).unwrap().unwrap(), e);
        assert_eq!(get_entry(&mut db, e.id + 1).unwrap(), None);
        let tags = list_tags(&mut db).unwrap();
        let names: Vec<_> = tags.iter().map(|t| (t.name.as_str(), t.entries)).collect();
        assert_eq!(names, [("DC", 1), ("SWC", 1)]);
    }

    #[test]
    fn create_tag_reports_duplicates_and_names_are_case_sensitive() {
        let (_dir, mut db) = sqlite();
        assert!(create_tag(&mut db, "DC").unwrap().is_some());
        assert!(create_tag(&mut db, "DC").unwrap().is_none());
        assert!(create_tag(&mut db, "dc").unwrap().is_some());
    }

    #[test]
    fn deleting_a_tag_cascades_to_its_links_but_keeps_the_entries_amy() {
        let (_dir, mut db) = sqlite();
        let a = create_entry(&mut db, &new("ann", &["DC", "SWC"]), "t0").unwrap();
        let b = create_entry(&mut db, &new("bob", &["DC"]), "t1").unwrap();
        assert_eq!(entries_with_tag(&mut db, "DC").unwrap().unwrap().len(), 2);

        assert!(delete_tag(&mut db, "DC").unwrap());
        assert!(!delete_tag(&mut db, "DC").unwrap());
        assert_eq!(entries_with_tag(&mut db, "DC").unwrap(), None);
        let entries = list_entries(&mut db).unwrap();
        assert_eq!(
            entries.iter().map(|e| e.id).collect::<Vec<_>>(),
            [a.id, b.id]
        );
        assert_eq!(entries[0].tags, ["SWC"]);
        assert!(entries[1].tags.is_empty());
        let links = db.query("SELECT COUNT(*) FROM entry_tags", &[]).unwrap();
        assert_eq!(links, vec![vec![Value::Int(1)]]);
    }

    #[test]
    fn deleting_an_entry_removes_its_links() {
        let (_dir, mut db) = sqlite();
        let a = create_entry(&mut db, &new("ann", &["DC"]), "t0").unwrap();
        assert!(delete_entry(&mut db, a.id).unwrap());
        assert!(!delete_entry(&mut db, a.id).unwrap());
        assert_eq!(list_tags(&mut db).unwrap()[0].entries, 0);
    }
}
