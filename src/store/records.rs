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
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, ToSql, params_from_iter};

use crate::ingest::{ACCOUNT, INDEX, KEY_COLUMNS, PARENT, arrow_schemas};
use crate::schema::Schema;

/// The record table of a schema table.
pub fn table_name(table: &str) -> String {
    format!("record_{table}")
}

fn quoted(name: &str) -> String {
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

/// Inserts account `account` (a root row of `tables`, the flattened text form of a window)
/// and every row of it in every table, with [`insert_statements`]; returns the account
/// record's id.
pub fn insert_account(
    conn: &Connection,
    schema: &Schema,
    statements: &[String],
    tables: &[RecordBatch],
    account: usize,
    kraken_account_number: &str,
    created_at: &str,
) -> rusqlite::Result<i64> {
    // Per table: the account's rows are contiguous from a first window row; their record
    // ids in row order.
    let mut ids: Vec<(usize, Vec<i64>)> = vec![(0, Vec::new()); tables.len()];
    let mut account_id = 0;
    for (t, batch) in tables.iter().enumerate() {
        let accounts = batch.column_by_name(ACCOUNT).expect("key column").as_primitive::<UInt32Type>().values();
        let from = accounts.partition_point(|a| (*a as usize) < account);
        let to = accounts.partition_point(|a| (*a as usize) <= account);
        if from == to {
            continue;
        }
        ids[t].0 = from;
        let table = &schema.tables[t];
        let lead_count = if table.parent.is_none() { 2 } else { 3 };
        let width = lead_count + batch.num_columns() - KEY_COLUMNS;
        let mut stmt = conn.prepare_cached(&statements[t])?;
        let parents = batch.column_by_name(PARENT).expect("key column").as_primitive::<UInt32Type>();
        let index = batch.column_by_name(INDEX).expect("key column").as_primitive::<UInt32Type>();
        let data = &batch.columns()[KEY_COLUMNS..];
        let mut values: Vec<Cell<'_>> = Vec::with_capacity(width);
        for row in from..to {
            values.clear();
            match table.parent {
                None => {
                    values.push(Cell::Text(kraken_account_number));
                    values.push(Cell::Text(created_at));
                }
                Some((parent, _)) => {
                    let parent_row = parents.value(row) as usize;
                    let (first, parent_ids) = &ids[parent.0];
                    let parent_id = parent_ids[parent_row - first];
                    values.push(Cell::Integer(account_id));
                    values.push(Cell::Integer(parent_id));
                    values.push(Cell::Integer(i64::from(index.value(row))));
                }
            }
            values.extend(data.iter().map(|c| cell(c, row)));
            stmt.execute(params_from_iter(&values))?;
            let id = conn.last_insert_rowid();
            if table.parent.is_none() {
                account_id = id;
            }
            ids[t].1.push(id);
        }
    }
    Ok(account_id)
}

/// The INSERT of every record table, in schema order (built once per chunk; the statements
/// themselves are cached by the connection).
pub fn insert_statements(schema: &Schema) -> Vec<String> {
    schema
        .tables
        .iter()
        .map(|table| {
            let lead = if table.parent.is_none() {
                ["kraken_account_number", "created_at"].as_slice()
            } else {
                ["account_id", "parent_id", "position"].as_slice()
            };
            let all: Vec<String> =
                lead.iter().map(|l| (*l).to_owned()).chain(table.columns.iter().map(|c| quoted(&c.name))).collect();
            format!(
                "INSERT INTO {} ({}) VALUES ({})",
                table_name(&table.name),
                all.join(", "),
                vec!["?"; all.len()].join(", ")
            )
        })
        .collect()
}

/// One bound value, borrowing text from the batch instead of copying it.
enum Cell<'a> {
    Null,
    Integer(i64),
    Text(&'a str),
}

impl ToSql for Cell<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Cell::Null => ToSqlOutput::Owned(Value::Null),
            Cell::Integer(i) => ToSqlOutput::Owned(Value::Integer(*i)),
            Cell::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
        })
    }
}

fn cell(column: &arrow_array::ArrayRef, row: usize) -> Cell<'_> {
    if column.is_null(row) {
        return Cell::Null;
    }
    match column.data_type() {
        DataType::Utf8 => Cell::Text(column.as_string::<i32>().value(row)),
        DataType::Boolean => Cell::Integer(i64::from(column.as_boolean().value(row))),
        DataType::Int64 => Cell::Integer(column.as_primitive::<Int64Type>().value(row)),
        DataType::UInt32 => Cell::Integer(i64::from(column.as_primitive::<UInt32Type>().value(row))),
        other => unreachable!("flattened text tables have no {other} columns"),
    }
}
