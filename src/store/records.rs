//! Account records: the tables of created accounts, generated from the schema.
//!
//! Each schema table `T` becomes `record_T`, one row per element, with the account's id, its
//! parent's id (the account for top-level lists) and its position in the list, then one
//! column per flattened column (`"params.unit_rate_per_kwh"`), typed as the rules read it:
//! text for strings, decimals (exact text), dates and datetimes (RFC 3339, UTC), integers for
//! booleans, integers and list lengths. `record_accounts` also holds the Kraken account number
//! (unique) and the creation time. A schema that gains columns gains them here too (the
//! tables are created or extended when create starts).

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt32Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use rusqlite::Connection;

use super::statement::{Statement, Value};

use crate::ingest::{ACCOUNT, INDEX, KEY_COLUMNS, PARENT, arrow_schemas};
use crate::schema::{RECORD_LIST_COLUMNS, RECORD_ROOT_COLUMNS, Schema};

/// The record table of a schema table.
pub fn table_name(table: &str) -> String {
    format!("record_{table}")
}

pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the record tables of `schema`, or adds the columns an older schema lacked.
pub fn ensure_tables(conn: &Connection, schema: &Schema) -> rusqlite::Result<()> {
    let arrow = arrow_schemas(schema);
    for (table, arrow) in schema.tables.iter().zip(&arrow) {
        let name = table_name(&table.name);
        let mut columns: Vec<String> = match &table.parent {
            None => vec![
                "id INTEGER PRIMARY KEY".to_owned(),
                "kraken_account_number TEXT NOT NULL UNIQUE".to_owned(),
                "created_at TEXT NOT NULL".to_owned(),
            ],
            Some((parent, _)) => vec![
                "id INTEGER PRIMARY KEY".to_owned(),
                format!("account_id INTEGER NOT NULL REFERENCES {}(id)", table_name(&schema.tables[0].name)),
                format!("parent_id INTEGER NOT NULL REFERENCES {}(id)", table_name(&schema.table(*parent).name)),
                "position INTEGER NOT NULL".to_owned(),
            ],
        };
        let data: Vec<(String, &'static str)> = arrow
            .fields()
            .iter()
            .skip(KEY_COLUMNS)
            .map(|f| (f.name().clone(), if f.data_type() == &DataType::Utf8 { "TEXT" } else { "INTEGER" }))
            .collect();
        columns.extend(data.iter().map(|(c, ty)| format!("{} {ty}", quoted(c))));
        conn.execute_batch(&format!("CREATE TABLE IF NOT EXISTS {name} ({})", columns.join(", ")))?;
        if table.parent.is_some() {
            conn.execute_batch(&format!("CREATE INDEX IF NOT EXISTS {name}_by_account ON {name} (account_id)"))?;
        }
        let existing: Vec<String> = {
            let mut stmt = conn.prepare(&format!("SELECT name FROM pragma_table_info('{name}')"))?;
            stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        for (c, ty) in data.iter().filter(|(c, _)| !existing.contains(c)) {
            conn.execute_batch(&format!("ALTER TABLE {name} ADD COLUMN {} {ty}", quoted(c)))?;
        }
    }
    Ok(())
}

/// An account to write: its root row in the window's tables, its Kraken account number and
/// its creation time.
pub struct NewAccount<'a> {
    pub row: usize,
    pub kraken_account_number: &'a str,
    pub created_at: &'a str,
}

/// Writes `accounts` (root rows of `tables`, the flattened text form of a window, in
/// ascending order) and every row of theirs in every table, table by table, several rows per
/// INSERT. A table's new rows take consecutive record ids after its largest (SQLite's rowid
/// rule, checked after every INSERT: an error, never a wrong parent), so a parent's id is
/// known when its children are written.
pub fn insert_accounts(
    conn: &Connection,
    inserts: &Inserts,
    tables: &[RecordBatch],
    accounts: &[NewAccount<'_>],
) -> rusqlite::Result<()> {
    let roots: Vec<usize> = accounts.iter().map(|a| a.row).collect();
    debug_assert!(roots.is_sorted(), "accounts come in window order");
    // Per table: the window rows written, ascending; the record id of rows[k] is first + k.
    let mut written: Vec<(Vec<usize>, i64)> = Vec::with_capacity(tables.len());
    let mut cells: Vec<Value<'_>> = Vec::new();
    for (t, batch) in tables.iter().enumerate() {
        let insert = &inserts.tables[t];
        let key = |name| batch.column_by_name(name).expect("key column").as_primitive::<UInt32Type>();
        let (owners, parents, index) = (key(ACCOUNT), key(PARENT), key(INDEX));
        let owners = owners.values();
        let rows = rows_of(owners, &roots);
        let data = &batch.columns()[KEY_COLUMNS..];
        let id_of = |t: usize, row: usize| -> i64 {
            let (rows, first) = &written[t];
            first + rows.binary_search(&row).expect("a parent row is written before its children") as i64
        };
        let largest: i64 = conn.prepare_cached(&insert.largest_id)?.query_row([], |r| r.get(0))?;
        let mut done = 0;
        while done < rows.len() {
            let (size, statement) = insert.statement_for(rows.len() - done);
            cells.clear();
            for (k, &row) in rows[done..done + size].iter().enumerate() {
                match insert.parent {
                    None => {
                        let account = &accounts[done + k];
                        cells.push(Value::Text(account.kraken_account_number));
                        cells.push(Value::Text(account.created_at));
                    }
                    Some(parent) => {
                        cells.push(Value::Integer(id_of(0, owners[row] as usize)));
                        cells.push(Value::Integer(id_of(parent, parents.value(row) as usize)));
                        cells.push(Value::Integer(i64::from(index.value(row))));
                    }
                }
                cells.extend(data.iter().map(|c| cell(c, row)));
            }
            statement.execute(conn, &cells)?;
            done += size;
            let last = conn.last_insert_rowid();
            if largest.checked_add(done as i64) != Some(last) {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERNAL),
                    Some(format!(
                        "{}: record ids are not consecutive ({last} after {largest} and {done} rows)",
                        insert.table
                    )),
                ));
            }
        }
        written.push((rows, largest + 1));
    }
    Ok(())
}

/// The rows of a table (by their account column, `owners`, ascending) that belong to the accounts
/// at `roots` (ascending root rows), in order.
pub(crate) fn rows_of(owners: &[u32], roots: &[usize]) -> Vec<usize> {
    roots
        .iter()
        .flat_map(|&root| {
            owners.partition_point(|a| (*a as usize) < root)..owners.partition_point(|a| (*a as usize) <= root)
        })
        .collect()
}

/// The INSERTs of every record table, in schema order, prepared once per schema and
/// connection by the store.
pub struct Inserts {
    tables: Vec<TableInsert>,
}

/// The INSERTs of one record table.
struct TableInsert {
    /// The record table.
    table: String,
    /// The parent table, for every table but the root.
    parent: Option<usize>,
    /// The largest record id so far (0 in an empty table).
    largest_id: String,
    /// An INSERT of this many rows, largest first; the last is of one row.
    by_size: Vec<(usize, Statement)>,
}

/// The row counts of the multi-row INSERTs: one statement's fixed costs (cursors, foreign key
/// lookups set up, the statement reset) are shared by up to 64 rows.
const BATCH_SIZES: [usize; 4] = [64, 16, 4, 1];

impl TableInsert {
    /// The largest INSERT that `remaining` rows fill, and its size.
    fn statement_for(&self, remaining: usize) -> (usize, &Statement) {
        let (size, statement) = self.by_size.iter().find(|(size, _)| *size <= remaining).expect("a one-row insert");
        (*size, statement)
    }
}

impl Inserts {
    /// Prepares the INSERTs of `schema`'s record tables (which exist) on `conn`.
    pub fn new(conn: &Connection, schema: &Schema) -> rusqlite::Result<Self> {
        let tables = schema
            .tables
            .iter()
            .map(|table| {
                // Every own column but `id`, which SQLite assigns.
                let lead = if table.parent.is_none() { &RECORD_ROOT_COLUMNS[1..] } else { &RECORD_LIST_COLUMNS[1..] };
                let columns: Vec<String> =
                    lead.iter().map(|l| (*l).to_owned()).chain(table.columns.iter().map(|c| quoted(&c.name))).collect();
                let row = format!("({})", vec!["?"; columns.len()].join(", "));
                let name = table_name(&table.name);
                let by_size = BATCH_SIZES
                    .iter()
                    .map(|&n| {
                        let sql = format!(
                            "INSERT INTO {name} ({}) VALUES {}",
                            columns.join(", "),
                            vec![row.as_str(); n].join(", ")
                        );
                        Ok((n, Statement::prepare(conn, &sql)?))
                    })
                    .collect::<rusqlite::Result<_>>()?;
                Ok(TableInsert {
                    parent: table.parent.as_ref().map(|(parent, _)| parent.0),
                    largest_id: format!("SELECT coalesce(max(id), 0) FROM {name}"),
                    by_size,
                    table: name,
                })
            })
            .collect::<rusqlite::Result<_>>()?;
        Ok(Self { tables })
    }
}

fn cell(column: &arrow_array::ArrayRef, row: usize) -> Value<'_> {
    if column.is_null(row) {
        return Value::Null;
    }
    match column.data_type() {
        DataType::Utf8 => Value::Text(column.as_string::<i32>().value(row)),
        DataType::Boolean => Value::Integer(i64::from(column.as_boolean().value(row))),
        DataType::Int64 => Value::Integer(column.as_primitive::<Int64Type>().value(row)),
        DataType::UInt32 => Value::Integer(i64::from(column.as_primitive::<UInt32Type>().value(row))),
        other => unreachable!("flattened text tables have no {other} columns"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Chunk, flatten_chunk};

    const TABLES: &str = r#"
[tables.things]
fields = [{ name = "code", type = "string", req = true }, { name = "parts", type = "list(parts)" }]

[tables.parts]
fields = [{ name = "p", type = "string", req = true }, { name = "subs", type = "list(subs)" }]

[tables.subs]
fields = [{ name = "s", type = "string" }]
"#;

    /// The tiny schema, its record tables in a new store, and three accounts flattened.
    fn setup() -> (Schema, Connection, Vec<RecordBatch>) {
        let schema = crate::schema::tiny_schema_for_tests(TABLES);
        let lines = [
            r#"{"code":"a","parts":[{"p":"a0","subs":[{"s":"a00"}]},{"p":"a1","subs":[{"s":"a10"},{"s":"a11"}]}]}"#,
            r#"{"code":"b","parts":[{"p":"b0","subs":[{"s":"b00"}]}]}"#,
            r#"{"code":"c","parts":[{"p":"c0"},{"p":"c1","subs":[{"s":"c10"}]}]}"#,
        ];
        let chunk = Chunk::Lines { first_line: 1, bytes: lines.join("\n").into_bytes() };
        let out = flatten_chunk(&schema, &arrow_schemas(&schema), &chunk);
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        ensure_tables(&conn, &schema).unwrap();
        (schema, conn, out.tables)
    }

    fn account<'a>(row: usize, number: &'a str) -> NewAccount<'a> {
        NewAccount { row, kraken_account_number: number, created_at: "2026-11-27T00:00:00Z" }
    }

    #[test]
    fn every_row_of_the_chosen_accounts_hangs_from_its_own_parent() {
        let (schema, conn, tables) = setup();
        let inserts = Inserts::new(&conn, &schema).unwrap();
        // An account written before, so that ids do not start at 1.
        insert_accounts(&conn, &inserts, &tables, &[account(1, "A-00000001")]).unwrap();
        insert_accounts(&conn, &inserts, &tables, &[account(0, "A-00000002"), account(2, "A-00000003")]).unwrap();
        let paths: Vec<String> = conn
            .prepare(
                "SELECT t.id || ':' || p.p || '/' || p.position || coalesce(':' || s.s || '/' || s.position, '')
                 FROM record_things t JOIN record_parts p ON p.parent_id = t.id AND p.account_id = t.id
                 LEFT JOIN record_subs s ON s.parent_id = p.id AND s.account_id = t.id
                 ORDER BY t.id, p.position, s.position",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(paths, ["1:b0/0:b00/0", "2:a0/0:a00/0", "2:a1/1:a10/0", "2:a1/1:a11/1", "3:c0/0", "3:c1/1:c10/0"]);
        let subs: i64 = conn.query_row("SELECT count(*) FROM record_subs", [], |r| r.get(0)).unwrap();
        assert_eq!(subs, 5, "every sub-list row, once");
        let violations: i64 =
            conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).unwrap();
        assert_eq!(violations, 0);
    }

    #[test]
    fn ids_that_are_not_consecutive_are_an_error_not_a_wrong_parent() {
        let (schema, conn, tables) = setup();
        let inserts = Inserts::new(&conn, &schema).unwrap();
        insert_accounts(&conn, &inserts, &tables, &[account(1, "A-00000001")]).unwrap();
        // At the largest rowid SQLite draws new ones at random.
        conn.execute(
            "INSERT INTO record_parts (id, account_id, parent_id, position, p) VALUES (9223372036854775807, 1, 1, 9, 'x')",
            [],
        )
        .unwrap();
        let err = insert_accounts(&conn, &inserts, &tables, &[account(0, "A-00000002"), account(2, "A-00000003")])
            .unwrap_err();
        assert!(err.to_string().contains("record ids are not consecutive"), "{err}");
    }
}
