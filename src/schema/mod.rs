//! The account schema: every table, field, value list and rule code of the payload.
//!
//! `schemas/account.toml` is read in three steps: `raw` walks the TOML tree keeping every
//! span, `resolve` turns it into a [`Schema`] and collects every problem at once, and the
//! result drives everything else: the flattener's tables and columns, the rules, the staged
//! Parquet schema and the field reference. A payload list is a [`Table`]; a nested object is
//! flattened into its parent's row with dotted column names (`params.unit_rate_per_kwh`).

pub mod docs;
mod raw;
mod resolve;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::diagnostics::ConfigError;

/// Index of a table in [`Schema::tables`]; the root table is `TableId(0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId(pub usize);

/// Index of an object shape in [`Schema::objects`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectId(pub usize);

/// How serious a finding is; `Off` disables a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
    Off,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Off => "off",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "error" => Some(Severity::Error),
            "warning" => Some(Severity::Warning),
            "off" => Some(Severity::Off),
            _ => None,
        }
    }
}

/// The resolved schema.
#[derive(Debug)]
pub struct Schema {
    pub name: String,
    pub version: u32,
    /// sha256 of the schema file, hex; recorded in every output.
    pub hash: String,
    /// Tables in a parent-before-child order; `tables[0]` is the root (one row per account).
    pub tables: Vec<Table>,
    pub objects: Vec<Object>,
    pub lists: BTreeMap<String, ValueList>,
    /// Every rule code with its severity (defaults from the file, possibly overridden).
    pub rules: BTreeMap<String, Severity>,
}

/// A table: one row per element of a list in the payload (or per account, for the root).
#[derive(Debug)]
pub struct Table {
    pub id: TableId,
    pub name: String,
    pub doc: String,
    /// The parent table and the path of the list inside a parent row (`customers`).
    pub parent: Option<(TableId, String)>,
    pub columns: Vec<Column>,
    pub body: TableBody,
}

/// What a table's rows hold: an object's fields, or one scalar per row (`list(string)`).
#[derive(Debug)]
pub enum TableBody {
    Record(ObjectId),
    Scalar(Box<Field>),
}

/// A column of a flattened table, after the key columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The attr path of the value relative to its row: `family_name`, `params.network_charges`.
    pub name: String,
    pub kind: ColumnKind,
}

/// The Arrow type of a flattened column. Raw values stay text until the rules have passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Strings, dates, datetimes, decimals, enums, codes and JSON text.
    Utf8,
    Bool,
    Int64,
    /// For a list field: the number of elements (null when absent or not a list).
    ListLen,
    /// For an object field: true when the object is present.
    Present,
}

/// An object shape: its fields in payload order.
#[derive(Debug)]
pub struct Object {
    pub name: String,
    pub fields: Vec<Field>,
    index: HashMap<String, usize>,
}

impl Object {
    pub fn field_index(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }
}

/// One field of an object (or the element of a scalar list).
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
    pub required: bool,
    pub null_ok: bool,
    pub not_blank: bool,
    /// Free text that may hold line feed, carriage return and tab (`invalid_characters`
    /// refuses every other control character, and those too in any other field).
    pub multiline: bool,
    pub min: Option<MinValue>,
    pub min_items: u32,
    pub check: Option<Check>,
    pub only_on: Option<SupplyType>,
    pub unique: Option<Unique>,
    pub depends_on: Option<String>,
    /// A date or datetime that may not be after the run's reference date.
    pub not_future: bool,
    /// Bounds outside which a value is implausible (a warning by default): dates for dates,
    /// decimal text for decimals.
    pub plausible: (Option<String>, Option<String>),
    /// A list the value should be in (`known`): outside it is the field's known code.
    pub known: Option<String>,
    /// The sibling this end date or datetime must come after, and whether equal is allowed.
    pub after: Option<(String, bool)>,
    /// Specific codes that replace generic ones (`customer_family_name_required`).
    pub codes: FieldCodes,
    pub doc: String,
    /// The column this field's value (or list length, or object presence) is written to.
    pub column: usize,
}

/// The codes a field reports, after the schema's specific replacements.
#[derive(Debug, Clone, Default)]
pub struct FieldCodes {
    /// Missing, null or blank (replaces `required`, `null` and `blank`).
    pub missing: Option<String>,
    /// An empty list (replaces `empty`).
    pub empty: Option<String>,
    /// An integer out of range (replaces `min_value` / `max_value`).
    pub range: Option<String>,
    /// Field present on the wrong supply type (default `field_not_allowed_for_supply_type`).
    pub only_on: Option<String>,
    /// A repeated value (the uniqueness rule's code).
    pub unique: Option<String>,
    /// A value present where its `depends_on` sibling's value has no list.
    pub unlisted: Option<String>,
    /// A date after the reference date (default `date_in_future`).
    pub future: Option<String>,
    /// A value outside the plausible bounds.
    pub plausible: Option<String>,
    /// A value outside the `known` list.
    pub known: Option<String>,
}

impl FieldCodes {
    pub fn missing_or<'a>(&'a self, generic: &'a str) -> &'a str {
        self.missing.as_deref().unwrap_or(generic)
    }
}

/// A field's type as declared in the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    String {
        max_len: Option<u32>,
    },
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Decimal {
        whole: u8,
        scale: u8,
    },
    Date,
    DateTime,
    /// Must be one of the named list's values.
    Enum(String),
    /// Should be one of the named list's values (unknown values are a warning).
    Code(String),
    Json,
    Object(ObjectId),
    List(TableId),
}

impl FieldType {
    /// The flattened column this type becomes.
    pub fn column_kind(&self) -> ColumnKind {
        match self {
            FieldType::Bool => ColumnKind::Bool,
            FieldType::Int { .. } => ColumnKind::Int64,
            FieldType::Object(_) => ColumnKind::Present,
            FieldType::List(_) => ColumnKind::ListLen,
            _ => ColumnKind::Utf8,
        }
    }

    /// The JSON type name used in findings ("expected a string").
    pub fn json_expectation(&self) -> &'static str {
        match self {
            FieldType::Bool => "a boolean",
            FieldType::Int { .. } => "an integer",
            FieldType::Decimal { .. } => "a decimal string or number",
            FieldType::Json => "any JSON value",
            FieldType::Object(_) => "an object",
            FieldType::List(_) => "a list",
            _ => "a string",
        }
    }
}

/// `min = ">=0"` or `min = ">0"` on a decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinValue {
    NonNegative,
    Positive,
}

/// The identifier and format checks a string field can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Malo,
    Melo,
    MarketPartner,
    Eic,
    Obis,
    Iban,
    Phone,
    Email,
    Postcode,
    MeterNumber,
    DocumentPath,
    ImportSupplier,
}

impl Check {
    pub const ALL: [(&'static str, Check, &'static str); 12] = [
        ("malo", Check::Malo, "invalid_supply_point_identifier"),
        ("melo", Check::Melo, "invalid_melo_id"),
        ("market_partner", Check::MarketPartner, "invalid_market_partner_id"),
        ("eic", Check::Eic, "invalid_eic"),
        ("obis", Check::Obis, "invalid_obis_code"),
        ("iban", Check::Iban, "invalid_iban"),
        ("phone", Check::Phone, "invalid_phone_number"),
        ("email", Check::Email, "invalid_email"),
        ("postcode", Check::Postcode, "invalid_postcode"),
        ("meter_number", Check::MeterNumber, "invalid_meter_serial_number"),
        ("document_path", Check::DocumentPath, "invalid_document_path"),
        ("import_supplier", Check::ImportSupplier, "invalid_import_supplier"),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, c, _)| *c == self).map(|(n, _, _)| *n).expect("every check is listed")
    }

    /// The code a failed check reports.
    pub fn code(self) -> &'static str {
        Self::ALL.iter().find(|(_, c, _)| *c == self).map(|(_, _, code)| *code).expect("every check is listed")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupplyType {
    Electricity,
    Gas,
}

impl SupplyType {
    pub fn as_str(self) -> &'static str {
        match self {
            SupplyType::Electricity => "ELECTRICITY",
            SupplyType::Gas => "GAS",
        }
    }
}

/// Where a field's values may not repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unique {
    pub scope: UniqueScope,
    /// Sibling fields that form a composite key with this one.
    pub with: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueScope {
    /// Within the whole input (across accounts).
    Input,
    /// Within one account, across all parents.
    Account,
    /// Among the siblings of one parent row.
    Parent,
}

/// A closed value list: plain, or selected by the value of a sibling field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueList {
    Plain(Vec<String>),
    ByKey(BTreeMap<String, Vec<String>>),
}

/// Why a schema file could not be loaded: unreadable, or with problems (all of them, with
/// their places). The schema's own error, so that the schema depends on nothing but its file.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SchemaError {
    /// The file could not be read; the message names the path.
    #[error("{0}")]
    #[diagnostic(code(ferry::io))]
    Io(#[from] std::io::Error),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(Box<ConfigError>),
}

impl Schema {
    /// Loads and resolves a schema file; every problem is reported in one diagnostic.
    pub fn load(path: &Path) -> Result<Schema, SchemaError> {
        let text = fs_err::read_to_string(path)?;
        Self::from_str(&path.display().to_string(), &text).map_err(SchemaError::Invalid)
    }

    /// Resolves schema text; `origin` names it in diagnostics.
    pub fn from_str(origin: &str, text: &str) -> Result<Schema, Box<ConfigError>> {
        let mut problems = Vec::new();
        let raw = raw::parse(text, &mut problems);
        let schema = raw.and_then(|raw| resolve::resolve(&raw, text, &mut problems));
        match schema {
            Some(schema) if problems.is_empty() => Ok(schema),
            _ => Err(Box::new(ConfigError::new("schema", origin, text, problems))),
        }
    }

    /// The schema shipped with ferry, compiled in so the binary works from any directory.
    pub fn builtin() -> Schema {
        Self::from_str("schemas/account.toml", BUILTIN_SCHEMA).expect("the shipped schema is valid (tested)")
    }

    pub fn root(&self) -> &Table {
        &self.tables[0]
    }

    /// Each table's parent table, by index (`None` for the root).
    pub fn parent_indices(&self) -> Vec<Option<usize>> {
        self.tables.iter().map(|t| t.parent.as_ref().map(|(p, _)| p.0)).collect()
    }

    pub fn table(&self, id: TableId) -> &Table {
        &self.tables[id.0]
    }

    pub fn object(&self, id: ObjectId) -> &Object {
        &self.objects[id.0]
    }

    pub fn table_by_name(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// Severity of a rule code; codes the schema does not list are errors.
    pub fn severity(&self, code: &str) -> Severity {
        self.rules.get(code).copied().unwrap_or(Severity::Error)
    }
}

/// The columns an account record (`ferry create`) has of its own, before its fields': a root
/// record's, and a list element's. No field may take one of these names.
pub const RECORD_ROOT_COLUMNS: [&str; 3] = ["id", "kraken_account_number", "created_at"];
pub const RECORD_LIST_COLUMNS: [&str; 4] = ["id", "account_id", "parent_id", "position"];

/// The text of `schemas/account.toml`, the default schema.
pub const BUILTIN_SCHEMA: &str = include_str!("../../schemas/account.toml");

/// The `[rules]` table a test schema needs: every engine code with its usual severity.
#[cfg(test)]
pub(crate) fn engine_rules_for_tests() -> String {
    let mut out = String::from("[rules]\n");
    for code in crate::findings::codes::ENGINE {
        let severity = if *code == crate::findings::codes::UNKNOWN_FIELD { "warning" } else { "error" };
        out.push_str(&format!("{code} = \"{severity}\"\n"));
    }
    out
}

/// A test schema, "tiny", rooted at `things`: the engine rules, then `rest` (more rules, then
/// the tables).
#[cfg(test)]
pub(crate) fn tiny_schema_for_tests(rest: &str) -> Schema {
    let text = format!("name = \"tiny\"\nversion = 1\nroot = \"things\"\n{}{rest}", engine_rules_for_tests());
    Schema::from_str("tiny.toml", &text).expect("the test schema is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_schema_loads_with_every_table_of_the_payload() {
        let schema = Schema::builtin();
        assert_eq!(schema.root().name, "accounts");
        let names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
        for expected in [
            "customers",
            "supply_addresses",
            "supply_points",
            "agreements",
            "melos",
            "meters",
            "registers",
            "readings",
            "ledgers",
            "ledger_identifiers",
            "transactions",
            "network_operators",
            "transmission_system_operators",
        ] {
            assert!(names.contains(&expected), "missing table {expected}: {names:?}");
        }
        let registers = schema.table_by_name("registers").unwrap();
        assert_eq!(schema.table(registers.parent.as_ref().unwrap().0).name, "meters");
        let agreements = schema.table_by_name("agreements").unwrap();
        let cols: Vec<&str> = agreements.columns.iter().map(|c| c.name.as_str()).collect();
        assert!(cols.contains(&"params.network_charges.eeg_charge_annual"), "{cols:?}");
        assert_eq!(schema.severity("unknown_field"), Severity::Warning);
        assert_eq!(schema.hash.len(), 64);
    }
}
