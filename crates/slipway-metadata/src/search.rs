//! MLflow's search grammar: filter strings, `order_by` clauses and page tokens.
//!
//! [`parse_filter`] turns `metrics.acc > 0.9 AND tags.team = 'a'` into a list
//! of [`Clause`]s (clauses are only ever joined by `AND`, as in MLflow), and
//! [`validate_filter`] checks them against what one kind of search allows
//! ([`Target`]), normalizing attribute names (`created` → `start_time`, ...).
//! [`parse_order_by`] and [`validate_order_by`] do the same for `order_by`.
//! Page tokens are base64 of `{"offset": N}` ([`encode_page_token`]).
//!
//! Nothing here builds SQL; the SQL store translates validated clauses into
//! parameterized queries, never interpolating user strings.

use base64::Engine;
use slipway_core::Error;

use crate::Result;

/// What a clause's identifier refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    /// `metrics.<key>` (latest value).
    Metric,
    /// `params.<key>`.
    Param,
    /// `tags.<key>`.
    Tag,
    /// An attribute of the entity (`status`, `name`, `start_time`, ...).
    Attribute,
    /// `datasets.name`, `datasets.digest`, `datasets.context` (runs only).
    Dataset,
}

impl Entity {
    /// Parses the entity prefix of an identifier (`metrics`, `tag`, `attr`, ...).
    pub fn parse(prefix: &str) -> Option<Self> {
        Some(match prefix.to_ascii_lowercase().as_str() {
            "metrics" | "metric" => Self::Metric,
            "params" | "param" | "parameters" | "parameter" => Self::Param,
            "tags" | "tag" => Self::Tag,
            "attributes" | "attribute" | "attr" | "run" => Self::Attribute,
            "datasets" | "dataset" => Self::Dataset,
            _ => return None,
        })
    }

    /// Name used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Metric => "metric",
            Self::Param => "parameter",
            Self::Tag => "tag",
            Self::Attribute => "attribute",
            Self::Dataset => "dataset",
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparator {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `LIKE` (case-sensitive, `%` and `_` wildcards)
    Like,
    /// `ILIKE` (case-insensitive)
    ILike,
    /// `IN (...)`
    In,
    /// `NOT IN (...)`
    NotIn,
    /// `IS NULL`
    IsNull,
    /// `IS NOT NULL`
    IsNotNull,
}

impl Comparator {
    /// The operator as written in a filter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Like => "LIKE",
            Self::ILike => "ILIKE",
            Self::In => "IN",
            Self::NotIn => "NOT IN",
            Self::IsNull => "IS NULL",
            Self::IsNotNull => "IS NOT NULL",
        }
    }

    /// Whether this is one of `= != > >= < <=`.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Self::Eq | Self::Ne | Self::Gt | Self::Ge | Self::Lt | Self::Le
        )
    }
}

/// The right-hand side of a clause.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    /// An unquoted number.
    Number(f64),
    /// A single- or double-quoted string.
    Str(String),
    /// A parenthesized list of strings (for `IN` / `NOT IN`).
    List(Vec<String>),
    /// No value (`IS NULL` / `IS NOT NULL`).
    None,
}

/// One `<entity>.<key> <comparator> <value>` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    /// What the identifier refers to.
    pub entity: Entity,
    /// Key (metric/param/tag name, attribute name or dataset field).
    pub key: String,
    /// Operator.
    pub comparator: Comparator,
    /// Value.
    pub value: FilterValue,
}

/// One `order_by` clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    /// What is ordered on.
    pub entity: Entity,
    /// Key.
    pub key: String,
    /// `ASC` (default) or `DESC`.
    pub ascending: bool,
}

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// Bare word (identifier or keyword); may contain dots.
    Word(String),
    /// Quoted text and its quote character (`'`, `"` or `` ` ``).
    Quoted(String, char),
    /// Number literal.
    Number(f64, String),
    /// `=`, `!=`, `<`, `<=`, `>`, `>=`.
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => w.clone(),
            Tok::Quoted(s, q) => format!("{q}{s}{q}"),
            Tok::Number(_, t) => t.clone(),
            Tok::Op(o) => (*o).to_string(),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::Comma => ",".into(),
        }
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
}

fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '.'
}

fn lex(input: &str) -> Result<Vec<Tok>> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '=' => {
                if chars.get(i + 1) == Some(&'=') {
                    return Err(Error::invalid(format!(
                        "Invalid comparator '==' at position {i} in search filter; use '='"
                    )));
                }
                i += 1;
                out.push(Tok::Op("="));
            }
            '!' => {
                if chars.get(i + 1) == Some(&'=') {
                    out.push(Tok::Op("!="));
                    i += 2;
                } else {
                    return Err(Error::invalid(format!(
                        "Invalid token '!' at position {i} in search filter"
                    )));
                }
            }
            '<' => match chars.get(i + 1) {
                Some('=') => {
                    out.push(Tok::Op("<="));
                    i += 2;
                }
                Some('>') => {
                    return Err(Error::invalid(format!(
                        "Invalid comparator '<>' at position {i} in search filter; use '!='"
                    )));
                }
                _ => {
                    out.push(Tok::Op("<"));
                    i += 1;
                }
            },
            '>' => {
                if chars.get(i + 1) == Some(&'=') {
                    out.push(Tok::Op(">="));
                    i += 2;
                } else {
                    out.push(Tok::Op(">"));
                    i += 1;
                }
            }
            '\'' | '"' | '`' => {
                let q = c;
                let mut s = String::new();
                let mut j = i + 1;
                let mut closed = false;
                while j < chars.len() {
                    let d = chars[j];
                    if d == '\\' && j + 1 < chars.len() {
                        s.push(chars[j + 1]);
                        j += 2;
                        continue;
                    }
                    if d == q {
                        if chars.get(j + 1) == Some(&q) {
                            s.push(q);
                            j += 2;
                            continue;
                        }
                        closed = true;
                        j += 1;
                        break;
                    }
                    s.push(d);
                    j += 1;
                }
                if !closed {
                    return Err(Error::invalid(format!(
                        "Invalid search filter: unterminated quoted string starting at position {i}: {}",
                        chars[i..].iter().collect::<String>()
                    )));
                }
                out.push(Tok::Quoted(s, q));
                i = j;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.')
                    && chars
                        .get(i + 1)
                        .is_some_and(|d| d.is_ascii_digit() || *d == '.')) =>
            {
                let start = i;
                let mut j = i;
                if chars[j] == '-' || chars[j] == '+' {
                    j += 1;
                }
                while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                    j += 1;
                }
                if j < chars.len() && (chars[j] == 'e' || chars[j] == 'E') {
                    let mut k = j + 1;
                    if k < chars.len() && (chars[k] == '-' || chars[k] == '+') {
                        k += 1;
                    }
                    if k < chars.len() && chars[k].is_ascii_digit() {
                        while k < chars.len() && chars[k].is_ascii_digit() {
                            k += 1;
                        }
                        j = k;
                    }
                }
                let text: String = chars[start..j].iter().collect();
                if j < chars.len() && is_word_char(chars[j]) {
                    let mut k = j;
                    while k < chars.len() && is_word_char(chars[k]) {
                        k += 1;
                    }
                    let bad: String = chars[start..k].iter().collect();
                    return Err(Error::invalid(format!(
                        "Invalid token '{bad}' in search filter"
                    )));
                }
                let v: f64 = text.parse().map_err(|_| {
                    Error::invalid(format!("Invalid number '{text}' in search filter"))
                })?;
                out.push(Tok::Number(v, text));
                i = j;
            }
            c if is_word_start(c) => {
                let start = i;
                let mut j = i;
                while j < chars.len() && is_word_char(chars[j]) {
                    j += 1;
                }
                out.push(Tok::Word(chars[start..j].iter().collect()));
                i = j;
            }
            other => {
                return Err(Error::invalid(format!(
                    "Invalid character '{other}' at position {i} in search filter"
                )));
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- parser

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    /// `entity.key`, `entity."quoted key"`, `entity.`quoted``, or a bare attribute.
    fn identifier(&mut self) -> Result<(Entity, String)> {
        match self.next() {
            Some(Tok::Word(w)) => {
                if let Some((prefix, rest)) = w.split_once('.') {
                    let entity = Entity::parse(prefix).ok_or_else(|| {
                        Error::invalid(format!(
                            "Invalid entity type '{prefix}' in identifier '{w}'. Valid values are \
                             ['metrics', 'params', 'tags', 'attributes', 'datasets']"
                        ))
                    })?;
                    if rest.is_empty() {
                        match self.next() {
                            Some(Tok::Quoted(k, '"' | '`')) => Ok((entity, k)),
                            Some(t) => Err(Error::invalid(format!(
                                "Invalid identifier '{w}{}': expected a key after '{w}'",
                                t.describe()
                            ))),
                            None => Err(Error::invalid(format!(
                                "Invalid identifier '{w}': missing key"
                            ))),
                        }
                    } else {
                        Ok((entity, rest.to_string()))
                    }
                } else if Entity::parse(&w).is_some() {
                    Err(Error::invalid(format!(
                        "Invalid identifier '{w}': expected '{w}.<key>'"
                    )))
                } else {
                    Ok((Entity::Attribute, w))
                }
            }
            Some(Tok::Quoted(k, '`')) => Ok((Entity::Attribute, k)),
            Some(t) => Err(Error::invalid(format!(
                "Invalid identifier '{}': expected an identifier such as 'metrics.<key>'",
                t.describe()
            ))),
            None => Err(Error::invalid(
                "Invalid search filter: expected an identifier",
            )),
        }
    }

    fn comparator(&mut self) -> Result<Comparator> {
        let t = self.next().ok_or_else(|| {
            Error::invalid("Invalid search filter: expected a comparator after the identifier")
        })?;
        Ok(match &t {
            Tok::Op(o) => match *o {
                "=" => Comparator::Eq,
                "!=" => Comparator::Ne,
                ">" => Comparator::Gt,
                ">=" => Comparator::Ge,
                "<" => Comparator::Lt,
                _ => Comparator::Le,
            },
            t if t.is_kw("LIKE") => Comparator::Like,
            t if t.is_kw("ILIKE") => Comparator::ILike,
            t if t.is_kw("IN") => Comparator::In,
            t if t.is_kw("NOT") => match self.next() {
                Some(t2) if t2.is_kw("IN") => Comparator::NotIn,
                Some(t2) => {
                    return Err(Error::invalid(format!(
                        "Invalid comparator 'NOT {}'",
                        t2.describe()
                    )));
                }
                None => return Err(Error::invalid("Invalid comparator 'NOT'")),
            },
            t if t.is_kw("IS") => match self.next() {
                Some(t2) if t2.is_kw("NULL") => Comparator::IsNull,
                Some(t2) if t2.is_kw("NOT") => match self.next() {
                    Some(t3) if t3.is_kw("NULL") => Comparator::IsNotNull,
                    _ => {
                        return Err(Error::invalid(
                            "Invalid comparator 'IS NOT': expected 'IS NOT NULL'",
                        ))
                    }
                },
                _ => {
                    return Err(Error::invalid(
                        "Invalid comparator 'IS': expected 'IS NULL' or 'IS NOT NULL'",
                    ))
                }
            },
            other => {
                return Err(Error::invalid(format!(
                    "Invalid comparator '{}'. Expected one of =, !=, >, >=, <, <=, LIKE, ILIKE, IN, NOT IN, IS NULL, IS NOT NULL",
                    other.describe()
                )));
            }
        })
    }

    fn value(&mut self, cmp: Comparator) -> Result<FilterValue> {
        match cmp {
            Comparator::IsNull | Comparator::IsNotNull => Ok(FilterValue::None),
            Comparator::In | Comparator::NotIn => {
                match self.next() {
                    Some(Tok::LParen) => {}
                    Some(t) => {
                        return Err(Error::invalid(format!(
                            "Invalid value '{}' for {}: expected a parenthesized list like ('a', 'b')",
                            t.describe(),
                            cmp.as_str()
                        )));
                    }
                    None => {
                        return Err(Error::invalid(format!(
                            "Missing value list after {}",
                            cmp.as_str()
                        )))
                    }
                }
                let mut items = Vec::new();
                loop {
                    match self.next() {
                        Some(Tok::Quoted(s, '\'' | '"')) => items.push(s),
                        Some(Tok::Number(_, text)) => items.push(text),
                        Some(t) => {
                            return Err(Error::invalid(format!(
                                "Invalid value '{}' in {} list: expected a quoted string",
                                t.describe(),
                                cmp.as_str()
                            )));
                        }
                        None => {
                            return Err(Error::invalid("Unterminated value list in search filter"))
                        }
                    }
                    match self.next() {
                        Some(Tok::Comma) => continue,
                        Some(Tok::RParen) => break,
                        Some(t) => {
                            return Err(Error::invalid(format!(
                                "Invalid token '{}' in value list: expected ',' or ')'",
                                t.describe()
                            )));
                        }
                        None => {
                            return Err(Error::invalid("Unterminated value list in search filter"))
                        }
                    }
                }
                Ok(FilterValue::List(items))
            }
            _ => match self.next() {
                Some(Tok::Number(v, _)) => Ok(FilterValue::Number(v)),
                Some(Tok::Quoted(s, '\'' | '"')) => Ok(FilterValue::Str(s)),
                Some(t) => Err(Error::invalid(format!(
                    "Invalid value '{}' in search filter: expected a number or a quoted string",
                    t.describe()
                ))),
                None => Err(Error::invalid(format!(
                    "Invalid search filter: missing value after '{}'",
                    cmp.as_str()
                ))),
            },
        }
    }
}

/// Parses an MLflow filter string into clauses joined by `AND`.
///
/// An empty (or all-whitespace) filter yields no clauses. Syntax errors are
/// `INVALID_PARAMETER_VALUE` naming the offending token.
pub fn parse_filter(filter: &str) -> Result<Vec<Clause>> {
    let toks = lex(filter)?;
    let mut p = Parser { toks, pos: 0 };
    let mut clauses = Vec::new();
    if p.peek().is_none() {
        return Ok(clauses);
    }
    loop {
        let (entity, key) = p.identifier()?;
        let comparator = p.comparator()?;
        let value = p.value(comparator)?;
        clauses.push(Clause {
            entity,
            key,
            comparator,
            value,
        });
        match p.next() {
            None => break,
            Some(t) if t.is_kw("AND") => {
                if p.peek().is_none() {
                    return Err(Error::invalid(
                        "Invalid search filter: dangling 'AND' at the end",
                    ));
                }
            }
            Some(t) if t.is_kw("OR") => {
                return Err(Error::invalid(
                    "Invalid search filter: 'OR' is not supported; clauses can only be joined by 'AND'",
                ));
            }
            Some(t) => {
                return Err(Error::invalid(format!(
                    "Invalid search filter: unexpected token '{}' (expected 'AND' or end of filter)",
                    t.describe()
                )));
            }
        }
    }
    Ok(clauses)
}

/// Parses one `order_by` clause: `<identifier> [ASC|DESC]`.
pub fn parse_order_by(clause: &str) -> Result<OrderBy> {
    let toks = lex(clause)?;
    if toks.is_empty() {
        return Err(Error::invalid("Invalid order_by clause: empty"));
    }
    let mut p = Parser { toks, pos: 0 };
    let (entity, key) = p.identifier()?;
    let ascending = match p.next() {
        None => true,
        Some(t) if t.is_kw("ASC") => true,
        Some(t) if t.is_kw("DESC") => false,
        Some(t) => {
            return Err(Error::invalid(format!(
                "Invalid order_by clause '{clause}': unexpected token '{}' (expected ASC or DESC)",
                t.describe()
            )));
        }
    };
    if let Some(t) = p.next() {
        return Err(Error::invalid(format!(
            "Invalid order_by clause '{clause}': unexpected token '{}'",
            t.describe()
        )));
    }
    Ok(OrderBy {
        entity,
        key,
        ascending,
    })
}

// ---------------------------------------------------------------- validation

/// Which search a filter belongs to; decides allowed identifiers and operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `search_runs`.
    Runs,
    /// `search_experiments`.
    Experiments,
    /// `search_registered_models`.
    RegisteredModels,
    /// `search_model_versions`.
    ModelVersions,
    /// `search_logged_models`.
    LoggedModels,
}

/// Kind of an attribute: compared as text or as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrKind {
    /// Text attribute (`=`, `!=`, `LIKE`, `ILIKE`, `IN`, `NOT IN`).
    Text,
    /// Numeric attribute (`=`, `!=`, `<`, `<=`, `>`, `>=`).
    Number,
}

impl Target {
    /// Canonical attribute name and kind for an attribute key, or `None` if unknown.
    pub fn attribute(self, key: &str) -> Option<(&'static str, AttrKind)> {
        use AttrKind::*;
        let k = key.to_ascii_lowercase();
        Some(match self {
            Target::Runs => match k.as_str() {
                "run_id" | "run_uuid" | "id" => ("run_id", Text),
                "run_name" | "name" => ("run_name", Text),
                "status" => ("status", Text),
                "user_id" => ("user_id", Text),
                "artifact_uri" => ("artifact_uri", Text),
                "lifecycle_stage" => ("lifecycle_stage", Text),
                "start_time" | "created" => ("start_time", Number),
                "end_time" => ("end_time", Number),
                _ => return None,
            },
            Target::Experiments => match k.as_str() {
                "name" => ("name", Text),
                "experiment_id" => ("experiment_id", Number),
                "creation_time" => ("creation_time", Number),
                "last_update_time" => ("last_update_time", Number),
                _ => return None,
            },
            Target::RegisteredModels => match k.as_str() {
                "name" => ("name", Text),
                "creation_timestamp" | "timestamp" | "creation_time" => {
                    ("creation_timestamp", Number)
                }
                "last_updated_timestamp" | "last_update_time" => ("last_updated_timestamp", Number),
                _ => return None,
            },
            Target::ModelVersions => match k.as_str() {
                "name" => ("name", Text),
                "version_number" | "version" => ("version_number", Number),
                "run_id" => ("run_id", Text),
                "source_path" | "source" => ("source_path", Text),
                "current_stage" | "stage" => ("current_stage", Text),
                "model_id" => ("model_id", Text),
                "creation_timestamp" | "timestamp" => ("creation_timestamp", Number),
                "last_updated_timestamp" => ("last_updated_timestamp", Number),
                _ => return None,
            },
            Target::LoggedModels => match k.as_str() {
                "name" => ("name", Text),
                "model_id" => ("model_id", Text),
                "model_type" => ("model_type", Text),
                "status" => ("status", Text),
                "source_run_id" => ("source_run_id", Text),
                "creation_timestamp" | "creation_timestamp_ms" | "creation_time" => {
                    ("creation_timestamp", Number)
                }
                "last_updated_timestamp" | "last_updated_timestamp_ms" => {
                    ("last_updated_timestamp", Number)
                }
                _ => return None,
            },
        })
    }

    fn allows(self, entity: Entity) -> bool {
        match self {
            Target::Runs => true,
            Target::Experiments | Target::RegisteredModels | Target::ModelVersions => {
                matches!(entity, Entity::Attribute | Entity::Tag)
            }
            Target::LoggedModels => !matches!(entity, Entity::Dataset),
        }
    }

    fn attribute_names(self) -> &'static str {
        match self {
            Target::Runs => "run_id, run_name, status, user_id, artifact_uri, start_time, end_time, created",
            Target::Experiments => "name, creation_time, last_update_time",
            Target::RegisteredModels => "name, creation_timestamp, last_updated_timestamp",
            Target::ModelVersions => "name, version_number, run_id, source_path, current_stage, model_id",
            Target::LoggedModels => {
                "name, model_id, model_type, status, source_run_id, creation_timestamp, last_updated_timestamp"
            }
        }
    }
}

fn check_comparator(c: &Clause, allowed: &[Comparator]) -> Result<()> {
    if allowed.contains(&c.comparator) {
        Ok(())
    } else {
        let names: Vec<&str> = allowed.iter().map(|c| c.as_str()).collect();
        Err(Error::invalid(format!(
            "Invalid comparator '{}' for {} '{}'. Allowed comparators are [{}]",
            c.comparator.as_str(),
            c.entity.as_str(),
            c.key,
            names.join(", ")
        )))
    }
}

fn expect_string(c: &Clause) -> Result<()> {
    match &c.value {
        FilterValue::Str(_) | FilterValue::List(_) | FilterValue::None => Ok(()),
        FilterValue::Number(n) => Err(Error::invalid(format!(
            "Expected a quoted string value for {} '{}' (e.g. 'my-value'). Got value {n}",
            c.entity.as_str(),
            c.key
        ))),
    }
}

fn expect_number(c: &mut Clause) -> Result<()> {
    match &c.value {
        FilterValue::Number(_) | FilterValue::None => Ok(()),
        FilterValue::Str(s) => {
            // MLflow accepts quoted numbers for numeric attributes.
            match s.trim().parse::<f64>() {
                Ok(v) if c.entity == Entity::Attribute => {
                    c.value = FilterValue::Number(v);
                    Ok(())
                }
                _ => Err(Error::invalid(format!(
                    "Expected numeric value type for {} '{}'. Found '{s}'",
                    c.entity.as_str(),
                    c.key
                ))),
            }
        }
        FilterValue::List(_) => Err(Error::invalid(format!(
            "Expected numeric value type for {} '{}'. Found a list",
            c.entity.as_str(),
            c.key
        ))),
    }
}

const TEXT_CMPS: [Comparator; 6] = [
    Comparator::Eq,
    Comparator::Ne,
    Comparator::Like,
    Comparator::ILike,
    Comparator::In,
    Comparator::NotIn,
];
const NUM_CMPS: [Comparator; 6] = [
    Comparator::Eq,
    Comparator::Ne,
    Comparator::Gt,
    Comparator::Ge,
    Comparator::Lt,
    Comparator::Le,
];

/// Validates clauses for a target; normalizes attribute keys to their
/// canonical name (see [`Target::attribute`]) and quoted numbers of numeric
/// attributes to numbers.
pub fn validate_filter(target: Target, clauses: &mut [Clause]) -> Result<()> {
    for c in clauses.iter_mut() {
        if !target.allows(c.entity) {
            return Err(Error::invalid(format!(
                "Invalid entity type '{}' for key '{}' in this search",
                c.entity.as_str(),
                c.key
            )));
        }
        match c.entity {
            Entity::Metric => {
                let mut allowed = NUM_CMPS.to_vec();
                allowed.extend([Comparator::IsNull, Comparator::IsNotNull]);
                check_comparator(c, &allowed)?;
                expect_number(c)?;
            }
            Entity::Param | Entity::Tag => {
                let mut allowed = TEXT_CMPS.to_vec();
                allowed.extend([Comparator::IsNull, Comparator::IsNotNull]);
                check_comparator(c, &allowed)?;
                expect_string(c)?;
            }
            Entity::Dataset => {
                let k = c.key.to_ascii_lowercase();
                if !matches!(k.as_str(), "name" | "digest" | "context") {
                    return Err(Error::invalid(format!(
                        "Invalid dataset key '{}'. Valid keys are name, digest, context",
                        c.key
                    )));
                }
                c.key = k;
                check_comparator(c, &TEXT_CMPS)?;
                expect_string(c)?;
            }
            Entity::Attribute => {
                let (canon, kind) = target.attribute(&c.key).ok_or_else(|| {
                    Error::invalid(format!(
                        "Invalid attribute key '{}' specified. Valid keys are {}",
                        c.key,
                        target.attribute_names()
                    ))
                })?;
                c.key = canon.to_string();
                match kind {
                    AttrKind::Text => {
                        check_comparator(c, &TEXT_CMPS)?;
                        expect_string(c)?;
                    }
                    AttrKind::Number => {
                        let mut allowed = NUM_CMPS.to_vec();
                        if c.key == "end_time" {
                            allowed.extend([Comparator::IsNull, Comparator::IsNotNull]);
                        }
                        check_comparator(c, &allowed)?;
                        expect_number(c)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Parses and validates a filter for a target in one step.
pub fn parse_filter_for(target: Target, filter: &str) -> Result<Vec<Clause>> {
    let mut clauses = parse_filter(filter)?;
    validate_filter(target, &mut clauses)?;
    Ok(clauses)
}

/// Parses and validates `order_by` clauses for a target; attribute keys are
/// normalized to canonical names.
pub fn parse_order_by_for(target: Target, clauses: &[String]) -> Result<Vec<OrderBy>> {
    let mut out = Vec::with_capacity(clauses.len());
    for raw in clauses {
        let mut ob = parse_order_by(raw)?;
        if !target.allows(ob.entity) || ob.entity == Entity::Dataset {
            return Err(Error::invalid(format!(
                "Invalid order_by entity type '{}' in '{raw}'",
                ob.entity.as_str()
            )));
        }
        if ob.entity == Entity::Attribute {
            let (canon, _) = target.attribute(&ob.key).ok_or_else(|| {
                Error::invalid(format!(
                    "Invalid order_by attribute key '{}' in '{raw}'. Valid keys are {}",
                    ob.key,
                    target.attribute_names()
                ))
            })?;
            ob.key = canon.to_string();
        }
        out.push(ob);
    }
    Ok(out)
}

// ---------------------------------------------------------------- LIKE & page tokens

/// Matches `text` against a SQL `LIKE` pattern (`%` any run, `_` one char).
/// Used by reference implementations and tests; the store matches in SQL.
pub fn like_match(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if case_insensitive {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    // Iterative wildcard matching with backtracking on the last `%`.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || (p[pi] != '%' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

/// Converts a `LIKE` pattern to an equivalent SQLite `GLOB` pattern
/// (case-sensitive), escaping GLOB's own metacharacters.
pub fn like_to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    for c in pattern.chars() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '*' => out.push_str("[*]"),
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            other => out.push(other),
        }
    }
    out
}

/// Encodes an offset as an opaque page token (base64 of `{"offset": N}`).
pub fn encode_page_token(offset: usize) -> String {
    let json = serde_json::json!({ "offset": offset }).to_string();
    base64::engine::general_purpose::STANDARD.encode(json)
}

/// Decodes a page token into an offset; `None` or empty is offset 0.
/// Anything else that is not a token from [`encode_page_token`] is
/// `INVALID_PARAMETER_VALUE`.
pub fn decode_page_token(token: Option<&str>) -> Result<usize> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    let bad = || Error::invalid(format!("Invalid page token '{token}'"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(token.trim()))
        .map_err(|_| bad())?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let off = v.get("offset").and_then(|o| o.as_u64()).ok_or_else(bad)?;
    usize::try_from(off).map_err(|_| bad())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use slipway_core::ErrorCode;

    fn one(s: &str) -> Clause {
        let v = parse_filter(s).unwrap();
        assert_eq!(v.len(), 1, "{s}");
        v.into_iter().next().unwrap()
    }

    #[test]
    fn parses_table() {
        let cases: Vec<(&str, Entity, &str, Comparator, FilterValue)> = vec![
            (
                "metrics.acc > 0.9",
                Entity::Metric,
                "acc",
                Comparator::Gt,
                FilterValue::Number(0.9),
            ),
            (
                "metric.acc>=-1e-3",
                Entity::Metric,
                "acc",
                Comparator::Ge,
                FilterValue::Number(-1e-3),
            ),
            (
                "metrics.\"my metric\" < 3",
                Entity::Metric,
                "my metric",
                Comparator::Lt,
                FilterValue::Number(3.0),
            ),
            (
                "metrics.`a b` <= 3",
                Entity::Metric,
                "a b",
                Comparator::Le,
                FilterValue::Number(3.0),
            ),
            (
                "params.lr = '0.1'",
                Entity::Param,
                "lr",
                Comparator::Eq,
                FilterValue::Str("0.1".into()),
            ),
            (
                "parameters.lr != \"x\"",
                Entity::Param,
                "lr",
                Comparator::Ne,
                FilterValue::Str("x".into()),
            ),
            (
                "tags.`a.b` LIKE 'x%'",
                Entity::Tag,
                "a.b",
                Comparator::Like,
                FilterValue::Str("x%".into()),
            ),
            (
                "tags.mlflow.user ilike '%X'",
                Entity::Tag,
                "mlflow.user",
                Comparator::ILike,
                FilterValue::Str("%X".into()),
            ),
            (
                "tag.t IS NULL",
                Entity::Tag,
                "t",
                Comparator::IsNull,
                FilterValue::None,
            ),
            (
                "tag.t is not null",
                Entity::Tag,
                "t",
                Comparator::IsNotNull,
                FilterValue::None,
            ),
            (
                "attributes.status = 'FINISHED'",
                Entity::Attribute,
                "status",
                Comparator::Eq,
                FilterValue::Str("FINISHED".into()),
            ),
            (
                "status = 'FINISHED'",
                Entity::Attribute,
                "status",
                Comparator::Eq,
                FilterValue::Str("FINISHED".into()),
            ),
            (
                "attr.run_id IN ('a', 'b')",
                Entity::Attribute,
                "run_id",
                Comparator::In,
                FilterValue::List(vec!["a".into(), "b".into()]),
            ),
            (
                "run.run_id not in ('a')",
                Entity::Attribute,
                "run_id",
                Comparator::NotIn,
                FilterValue::List(vec!["a".into()]),
            ),
            (
                "datasets.name = 'ds'",
                Entity::Dataset,
                "name",
                Comparator::Eq,
                FilterValue::Str("ds".into()),
            ),
            (
                "start_time >= 1700000000000",
                Entity::Attribute,
                "start_time",
                Comparator::Ge,
                FilterValue::Number(1.7e12),
            ),
            (
                "tags.q = 'it''s'",
                Entity::Tag,
                "q",
                Comparator::Eq,
                FilterValue::Str("it's".into()),
            ),
            (
                "tags.q = 'a\\'b'",
                Entity::Tag,
                "q",
                Comparator::Eq,
                FilterValue::Str("a'b".into()),
            ),
        ];
        for (s, e, k, c, v) in cases {
            let got = one(s);
            assert_eq!(
                got,
                Clause {
                    entity: e,
                    key: k.into(),
                    comparator: c,
                    value: v
                },
                "{s}"
            );
        }
    }

    #[test]
    fn parses_and_chains() {
        let v = parse_filter("metrics.a > 1 and params.b = 'x' AND tags.c LIKE '%'").unwrap();
        assert_eq!(v.len(), 3);
        assert!(parse_filter("").unwrap().is_empty());
        assert!(parse_filter("   ").unwrap().is_empty());
    }

    #[test]
    fn rejects_bad_filters() {
        let bad = [
            ("metrics.a > 1 OR metrics.b > 2", "OR"),
            ("metrics.a >", "missing value"),
            ("metrics.a ~ 1", "~"),
            ("foo.a = 'x'", "foo"),
            ("metrics.a = 1 AND", "AND"),
            ("tags.a = 'x", "unterminated"),
            ("metrics.a = 1 metrics.b = 2", "metrics.b"),
            ("tags.a IN 'x'", "'x'"),
            ("tags.a = `x`", "`x`"),
            ("metrics = 1", "metrics"),
            ("tags.a NOT LIKE 'x'", "NOT LIKE"),
        ];
        for (s, needle) in bad {
            let e = parse_filter(s).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{s}");
            assert!(
                e.message.to_lowercase().contains(&needle.to_lowercase()),
                "{s}: {} should mention {needle}",
                e.message
            );
        }
    }

    #[test]
    fn validates_per_target() {
        assert!(parse_filter_for(Target::Runs, "metrics.a = 'x'").is_err());
        assert!(parse_filter_for(Target::Runs, "params.a = 1").is_err());
        assert!(parse_filter_for(Target::Runs, "metrics.a LIKE 1").is_err());
        assert!(parse_filter_for(Target::Runs, "attributes.foo = 'x'").is_err());
        assert!(parse_filter_for(Target::Runs, "start_time LIKE 'x'").is_err());
        let c = parse_filter_for(Target::Runs, "created > '5'").unwrap();
        assert_eq!(c[0].key, "start_time");
        assert_eq!(c[0].value, FilterValue::Number(5.0));
        let c = parse_filter_for(Target::Runs, "attributes.run_name = 'x'").unwrap();
        assert_eq!(c[0].key, "run_name");
        assert!(parse_filter_for(Target::Experiments, "metrics.a > 1").is_err());
        assert!(parse_filter_for(Target::Experiments, "name LIKE 'a%'").is_ok());
        assert!(
            parse_filter_for(Target::RegisteredModels, "name ILIKE 'a%' AND tags.x = 'y'").is_ok()
        );
        assert!(parse_filter_for(Target::ModelVersions, "run_id IN ('a','b')").is_ok());
        assert!(parse_filter_for(Target::ModelVersions, "version_number > 1").is_ok());
        assert!(
            parse_filter_for(Target::LoggedModels, "metrics.acc > 1 AND params.a = 'b'").is_ok()
        );
        assert!(parse_filter_for(Target::Runs, "datasets.foo = 'x'").is_err());
    }

    #[test]
    fn order_by() {
        assert_eq!(
            parse_order_by("metrics.acc DESC").unwrap(),
            OrderBy {
                entity: Entity::Metric,
                key: "acc".into(),
                ascending: false
            }
        );
        assert_eq!(
            parse_order_by("metrics.`my acc`").unwrap(),
            OrderBy {
                entity: Entity::Metric,
                key: "my acc".into(),
                ascending: true
            }
        );
        assert_eq!(
            parse_order_by("params.lr asc").unwrap(),
            OrderBy {
                entity: Entity::Param,
                key: "lr".into(),
                ascending: true
            }
        );
        let v = parse_order_by_for(
            Target::Runs,
            &["attributes.start_time".into(), "created DESC".into()],
        )
        .unwrap();
        assert_eq!(v[0].key, "start_time");
        assert_eq!(v[1].key, "start_time");
        assert!(!v[1].ascending);
        assert!(parse_order_by("metrics.acc sideways").is_err());
        assert!(parse_order_by("").is_err());
        assert!(parse_order_by_for(Target::Runs, &["attributes.nope".into()]).is_err());
        assert!(parse_order_by_for(Target::Experiments, &["metrics.a".into()]).is_err());
    }

    #[test]
    fn page_tokens() {
        for n in [0usize, 1, 7, 1000, 123456] {
            assert_eq!(decode_page_token(Some(&encode_page_token(n))).unwrap(), n);
        }
        assert_eq!(decode_page_token(None).unwrap(), 0);
        assert_eq!(decode_page_token(Some("")).unwrap(), 0);
        for bad in ["!!!", "abc", "eyJmb28iOjF9"] {
            let e = decode_page_token(Some(bad)).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        }
    }

    #[test]
    fn like_semantics() {
        assert!(like_match("a%", "abc", false));
        assert!(!like_match("A%", "abc", false));
        assert!(like_match("A%", "abc", true));
        assert!(like_match("%b%", "abc", false));
        assert!(like_match("a_c", "abc", false));
        assert!(!like_match("a_c", "abbc", false));
        assert!(like_match("%", "", false));
        assert!(like_match("a%c%e", "abcde", false));
        assert!(!like_match("a%c%f", "abcde", false));
        assert_eq!(like_to_glob("a%b_c*"), "a*b?c[*]");
    }

    /// Property-style check: any key/value that round-trips through quoting parses back.
    #[test]
    fn quoting_roundtrip() {
        let keys = [
            "a",
            "with space",
            "dots.in.key",
            "ünï",
            "q\"uote",
            "x-y",
            "1abc",
        ];
        let values = ["", "plain", "it's", "%_", "back\\slash", "ünï cödé"];
        for k in keys {
            for v in values {
                let kq = k.replace('`', "``");
                let vq = v.replace('\\', "\\\\").replace('\'', "''");
                let f = format!(
                    "tags.`{kq}` = '{vq}' AND params.`{kq}` != \"{}\"",
                    v.replace('\\', "\\\\").replace('"', "\"\"")
                );
                let c = parse_filter(&f).unwrap();
                assert_eq!(c[0].key, k);
                assert_eq!(c[0].value, FilterValue::Str(v.to_string()), "{f}");
                assert_eq!(c[1].value, FilterValue::Str(v.to_string()), "{f}");
            }
        }
        for n in [0.0f64, -1.5, 1e300, 3.25e-7, 42.0] {
            let c = parse_filter(&format!("metrics.m > {n:e}")).unwrap();
            assert_eq!(c[0].value, FilterValue::Number(n));
        }
    }
}
