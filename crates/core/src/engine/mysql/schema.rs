//! The DDL of a MySQL/MariaDB snapshot: sequences, routines, views and triggers as
//! the server shows them, definers left out, in the order a restore can create them.

use mysql::Conn;

use super::connect::{cell, query_text};
use super::load::LOAD_SQL_MODE;
use super::quote;
use crate::error::{Error, Result};

/// What `schema.sql` starts with: the session a restore needs (as mysqldump's own
/// header sets it), so the part runs right in the `mariadb` client as in ostler.
pub(super) const SCHEMA_HEADER: &str = "-- MySQL/MariaDB schema captured by ostler\n\
     /*!40101 SET NAMES utf8mb4 */;\n\
     SET SESSION time_zone = '+00:00';\n\
     SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES';\n\
     SET FOREIGN_KEY_CHECKS = 0;\n\
     SET UNIQUE_CHECKS = 0;\n";

/// MariaDB sequences, before the tables (a column default may call `NEXTVAL`), each
/// set to where it stood in the snapshot (a sequence is an InnoDB table, read
/// consistently with the rows), as mariadb-dump does.
pub(super) fn read_sequences(conn: &mut Conn, label: &str, names: &[String]) -> Result<String> {
    let mut out = String::new();
    for name in names {
        let shown = show_create(conn, label, "SEQUENCE", name, 1)?;
        let what = format!("reading sequence {name}");
        let next = query_text(
            conn,
            label,
            &what,
            &format!("SELECT next_not_cached_value FROM {}", quote::ident(name)),
        )?;
        let next = next.first().map(|r| cell(r, 0)).unwrap_or_default();
        if next.parse::<i64>().is_err() {
            return Err(Error::failed(format!(
                "{label}: {what}: unexpected value {next:?}"
            )));
        }
        out.push_str(&format!(
            "\n{};\nDO SETVAL({}, {next}, 0);\n",
            cell(&shown, 1),
            quote::ident(name)
        ));
    }
    Ok(out)
}

/// `SHOW CREATE ...` of one object: column `col` of its single row.
fn show_create(
    conn: &mut Conn,
    label: &str,
    kind: &str,
    name: &str,
    col: usize,
) -> Result<Vec<Option<String>>> {
    let what = format!(
        "reading the definition of {} {name}",
        kind.to_ascii_lowercase()
    );
    let rows = query_text(
        conn,
        label,
        &what,
        &format!("SHOW CREATE {kind} {}", quote::ident(name)),
    )?;
    match rows.into_iter().next() {
        Some(row) if row.get(col).is_some_and(Option::is_some) => Ok(row),
        _ => Err(Error::failed(format!(
            "{label}: {what}: the server did not show it (missing privilege?)"
        ))),
    }
}

/// Statements in a `DELIMITER ;;` block, each with the sql_mode it was created in
/// (it decides how its body parses), then the load mode back.
fn delimited_block(statements: &[(String, String)]) -> String {
    if statements.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nDELIMITER ;;\n");
    for (mode, sql) in statements {
        out.push_str(&format!(
            "SET SESSION sql_mode = {}\n;;\n{sql}\n;;\n",
            quote::string(mode)
        ));
    }
    out.push_str(&format!(
        "DELIMITER ;\nSET SESSION sql_mode = '{LOAD_SQL_MODE}';\n"
    ));
    out
}

pub(super) fn read_routines(conn: &mut Conn, label: &str) -> Result<String> {
    let list = query_text(
        conn,
        label,
        "listing routines",
        "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES \
         WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
    )?;
    let mut statements = Vec::new();
    for row in list {
        let kind = cell(&row, 0);
        // MariaDB's Oracle-mode packages are not handled yet.
        if kind != "PROCEDURE" && kind != "FUNCTION" {
            continue;
        }
        let shown = show_create(conn, label, &kind, &cell(&row, 1), 2)?;
        statements.push((cell(&shown, 1), strip_definer(&cell(&shown, 2))));
    }
    Ok(delimited_block(&statements))
}

pub(super) fn read_triggers(conn: &mut Conn, label: &str) -> Result<String> {
    let list = query_text(
        conn,
        label,
        "listing triggers",
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() \
         ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
    )?;
    let mut statements = Vec::new();
    for row in list {
        let shown = show_create(conn, label, "TRIGGER", &cell(&row, 0), 2)?;
        statements.push((cell(&shown, 1), strip_definer(&cell(&shown, 2))));
    }
    let mut out =
        String::from("-- MySQL/MariaDB triggers captured by ostler (created after the rows)\n");
    out.push_str(&delimited_block(&statements));
    Ok(out)
}

/// Views, each after the views it names (a view can only be created once those exist).
pub(super) fn read_views(conn: &mut Conn, label: &str, names: &[String]) -> Result<String> {
    let mut pending = Vec::new();
    for name in names {
        let shown = show_create(conn, label, "VIEW", name, 1)?;
        pending.push((name.clone(), strip_definer(&cell(&shown, 1))));
    }
    let mut out = String::new();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|(_, sql)| {
                !pending.iter().any(|(other, other_sql)| {
                    other_sql != sql && sql.contains(&quote::ident(other))
                })
            })
            .unwrap_or(0);
        let (_, sql) = pending.remove(ready);
        out.push_str(&format!("\n{sql};\n"));
    }
    Ok(out)
}

/// Removes the `DEFINER=user@host` clause, so the restoring user becomes the definer
/// (creating objects for another user needs privileges a restore may not have).
/// Leaves the text alone when the clause is not in the expected form.
fn strip_definer(sql: &str) -> String {
    const CLAUSE: &str = "DEFINER=";
    let Some(start) = sql.find(CLAUSE) else {
        return sql.to_string();
    };
    let rest = &sql[start + CLAUSE.len()..];
    let Some(user) = account_part_len(rest) else {
        return sql.to_string();
    };
    let Some(host_text) = rest[user..].strip_prefix('@') else {
        return sql.to_string();
    };
    let Some(host) = account_part_len(host_text) else {
        return sql.to_string();
    };
    let end = start + CLAUSE.len() + user + 1 + host;
    format!("{}{}", &sql[..start], sql[end..].trim_start_matches(' '))
}

/// Length of a quoted (`` ` `` or `'`, doubled to escape) or bare account name part.
fn account_part_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let quote = *bytes.first()?;
    if quote == b'`' || quote == b'\'' {
        let mut i = 1;
        while i < bytes.len() {
            if bytes[i] == quote {
                if bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                    continue;
                }
                return Some(i + 1);
            }
            i += 1;
        }
        None
    } else {
        let n = s
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'%' | b'-'))
            .count();
        (n > 0).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_definer_keeps_the_rest() {
        assert_eq!(
            strip_definer("CREATE ALGORITHM=UNDEFINED DEFINER=`a``b`@`%` SQL SECURITY DEFINER VIEW `v` AS select 1"),
            "CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `v` AS select 1"
        );
        assert_eq!(
            strip_definer("CREATE DEFINER='u'@'localhost' TRIGGER t"),
            "CREATE TRIGGER t"
        );
    }
}
