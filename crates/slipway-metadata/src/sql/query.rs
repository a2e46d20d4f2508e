//! Translation of validated search clauses into parameterized SQL.
//!
//! User-supplied keys and values only ever travel as bound arguments; the
//! SQL text is assembled from fixed fragments and column names chosen from
//! closed lists.

use slipway_core::Error;

use super::util::{Arg, Dialect, Sql};
use crate::search::{like_to_glob, Clause, Comparator, Entity, FilterValue, OrderBy};
use crate::{Result, ViewType};

/// Default page size when the caller passes 0.
pub(crate) const DEFAULT_PAGE: usize = 1000;

fn value_str(c: &Clause) -> Result<String> {
    match &c.value {
        FilterValue::Str(s) => Ok(s.clone()),
        FilterValue::Number(n) => Ok(n.to_string()),
        _ => Err(Error::invalid(format!(
            "Invalid value for {} '{}' with comparator {}",
            c.entity.as_str(),
            c.key,
            c.comparator.as_str()
        ))),
    }
}

fn value_num(c: &Clause) -> Result<f64> {
    match &c.value {
        FilterValue::Number(n) => Ok(*n),
        _ => Err(Error::invalid(format!(
            "Expected numeric value type for {} '{}'",
            c.entity.as_str(),
            c.key
        ))),
    }
}

/// A text comparison of `col` (a trusted column expression) with the clause's value.
pub(crate) fn text_cond(q: &mut Sql, d: Dialect, col: &str, c: &Clause) -> Result<String> {
    Ok(match c.comparator {
        Comparator::Eq => format!("{col} = {}", q.s(&value_str(c)?)),
        Comparator::Ne => format!("{col} <> {}", q.s(&value_str(c)?)),
        Comparator::Like => match d {
            Dialect::Sqlite => format!("{col} GLOB {}", q.s(&like_to_glob(&value_str(c)?))),
            Dialect::Postgres => format!("{col} LIKE {}", q.s(&value_str(c)?)),
        },
        Comparator::ILike => format!("LOWER({col}) LIKE LOWER({})", q.s(&value_str(c)?)),
        Comparator::In | Comparator::NotIn => {
            let FilterValue::List(items) = &c.value else {
                return Err(Error::invalid(format!(
                    "{} needs a list of values",
                    c.comparator.as_str()
                )));
            };
            let l = q.list(items);
            if c.comparator == Comparator::In {
                format!("{col} IN {l}")
            } else {
                format!("{col} NOT IN {l}")
            }
        }
        Comparator::IsNull => format!("{col} IS NULL"),
        Comparator::IsNotNull => format!("{col} IS NOT NULL"),
        other => {
            return Err(Error::invalid(format!(
                "Invalid comparator '{}' for {} '{}'",
                other.as_str(),
                c.entity.as_str(),
                c.key
            )));
        }
    })
}

/// A numeric comparison of `col` with the clause's value.
pub(crate) fn num_cond(q: &mut Sql, col: &str, c: &Clause) -> Result<String> {
    num_cond_as(q, col, c, false)
}

/// Like [`num_cond`]; `float` binds the value as a double even when integral.
fn num_cond_as(q: &mut Sql, col: &str, c: &Clause, float: bool) -> Result<String> {
    let op = match c.comparator {
        Comparator::IsNull => return Ok(format!("{col} IS NULL")),
        Comparator::IsNotNull => return Ok(format!("{col} IS NOT NULL")),
        Comparator::Eq => "=",
        Comparator::Ne => "<>",
        Comparator::Gt => ">",
        Comparator::Ge => ">=",
        Comparator::Lt => "<",
        Comparator::Le => "<=",
        other => {
            return Err(Error::invalid(format!(
                "Invalid comparator '{}' for numeric {} '{}'",
                other.as_str(),
                c.entity.as_str(),
                c.key
            )));
        }
    };
    let v = value_num(c)?;
    let p = if !float && v.fract() == 0.0 && v.abs() < 9.0e18 {
        q.arg(Arg::I(v as i64))
    } else {
        q.arg(Arg::F(v))
    };
    Ok(format!("{col} {op} {p}"))
}

/// Metric comparison on a table with `value` and `is_nan` columns aliased `alias`.
fn metric_cond(q: &mut Sql, alias: &str, c: &Clause) -> Result<String> {
    let inner = num_cond_as(q, &format!("{alias}.value"), c, true)?;
    Ok(if c.comparator == Comparator::Ne {
        format!("({alias}.is_nan = 1 OR {inner})")
    } else {
        format!("{alias}.is_nan = 0 AND {inner}")
    })
}

/// `ORDER BY` fragment putting NULLs last whatever the direction.
fn order_nulls_last(col: &str, asc: bool) -> String {
    format!(
        "CASE WHEN {col} IS NULL THEN 1 ELSE 0 END, {col} {}",
        if asc { "ASC" } else { "DESC" }
    )
}

fn lifecycle_cond(col: &str, view: ViewType) -> String {
    match view {
        ViewType::ActiveOnly => format!("{col} = 'active'"),
        ViewType::DeletedOnly => format!("{col} = 'deleted'"),
        ViewType::All => "1 = 1".to_string(),
    }
}

fn page(q: &mut Sql, offset: usize, limit: usize) {
    let l = q.i((limit + 1) as i64);
    let o = q.i(offset as i64);
    q.push(&format!(" LIMIT {l} OFFSET {o}"));
}

// ------------------------------------------------------------ runs

fn run_attr_col(key: &str) -> Result<&'static str> {
    Ok(match key {
        "run_id" => "r.run_uuid",
        "run_name" => "r.name",
        "status" => "r.status",
        "user_id" => "r.user_id",
        "artifact_uri" => "r.artifact_uri",
        "lifecycle_stage" => "r.lifecycle_stage",
        "start_time" => "r.start_time",
        "end_time" => "r.end_time",
        other => return Err(Error::invalid(format!("Invalid attribute key '{other}'"))),
    })
}

/// SQL selecting one page of run ids (fetching `limit + 1` rows).
pub(crate) fn runs_query(
    d: Dialect,
    exp_ids: &[i64],
    view: ViewType,
    clauses: &[Clause],
    order: &[OrderBy],
    offset: usize,
    limit: usize,
) -> Result<Sql> {
    let mut q = Sql::default();
    let mut joins = String::new();
    let mut order_sql: Vec<String> = Vec::new();
    let mut saw_start_time = false;
    for (i, ob) in order.iter().enumerate() {
        let dir = if ob.ascending { "ASC" } else { "DESC" };
        match ob.entity {
            Entity::Metric => {
                let k = q.s(&ob.key);
                joins.push_str(&format!(
                    " LEFT JOIN latest_metrics o{i} ON o{i}.run_uuid = r.run_uuid AND o{i}.key = {k}"
                ));
                order_sql.push(format!(
                    "CASE WHEN o{i}.run_uuid IS NULL THEN 2 WHEN o{i}.is_nan = 1 THEN 1 ELSE 0 END, o{i}.value {dir}"
                ));
            }
            Entity::Param | Entity::Tag => {
                let table = if ob.entity == Entity::Param {
                    "params"
                } else {
                    "tags"
                };
                let k = q.s(&ob.key);
                joins.push_str(&format!(
                    " LEFT JOIN {table} o{i} ON o{i}.run_uuid = r.run_uuid AND o{i}.key = {k}"
                ));
                order_sql.push(order_nulls_last(&format!("o{i}.value"), ob.ascending));
            }
            Entity::Attribute => {
                let col = run_attr_col(&ob.key)?;
                if ob.key == "start_time" {
                    saw_start_time = true;
                }
                order_sql.push(order_nulls_last(col, ob.ascending));
            }
            Entity::Dataset => return Err(Error::invalid("Cannot order runs by dataset")),
        }
    }
    if !saw_start_time {
        order_sql.push("r.start_time DESC".into());
    }
    order_sql.push("r.run_uuid ASC".into());

    let mut wh: Vec<String> = Vec::new();
    let ids: Vec<String> = exp_ids.iter().map(|i| q.i(*i)).collect();
    wh.push(format!("r.experiment_id IN ({})", ids.join(", ")));
    wh.push(lifecycle_cond("r.lifecycle_stage", view));
    for c in clauses {
        let cond = match c.entity {
            Entity::Metric => match c.comparator {
                Comparator::IsNull | Comparator::IsNotNull => {
                    let k = q.s(&c.key);
                    let not = if c.comparator == Comparator::IsNull {
                        "NOT "
                    } else {
                        ""
                    };
                    format!("r.run_uuid {not}IN (SELECT m.run_uuid FROM latest_metrics m WHERE m.key = {k})")
                }
                _ => {
                    let k = q.s(&c.key);
                    let mc = metric_cond(&mut q, "m", c)?;
                    format!("r.run_uuid IN (SELECT m.run_uuid FROM latest_metrics m WHERE m.key = {k} AND {mc})")
                }
            },
            Entity::Param | Entity::Tag => {
                let table = if c.entity == Entity::Param {
                    "params"
                } else {
                    "tags"
                };
                let k = q.s(&c.key);
                match c.comparator {
                    Comparator::IsNull | Comparator::IsNotNull => {
                        let not = if c.comparator == Comparator::IsNull {
                            "NOT "
                        } else {
                            ""
                        };
                        format!("r.run_uuid {not}IN (SELECT p.run_uuid FROM {table} p WHERE p.key = {k})")
                    }
                    _ => {
                        let tc = text_cond(&mut q, d, "p.value", c)?;
                        format!("r.run_uuid IN (SELECT p.run_uuid FROM {table} p WHERE p.key = {k} AND {tc})")
                    }
                }
            }
            Entity::Attribute => {
                let col = run_attr_col(&c.key)?;
                if matches!(c.key.as_str(), "start_time" | "end_time") {
                    num_cond(&mut q, col, c)?
                } else {
                    text_cond(&mut q, d, col, c)?
                }
            }
            Entity::Dataset => match c.key.as_str() {
                "name" | "digest" => {
                    let col = if c.key == "name" {
                        "ds.name"
                    } else {
                        "ds.digest"
                    };
                    let tc = text_cond(&mut q, d, col, c)?;
                    format!(
                        "r.run_uuid IN (SELECT di.run_uuid FROM dataset_inputs di JOIN datasets ds \
                         ON ds.dataset_uuid = di.dataset_uuid WHERE {tc})"
                    )
                }
                "context" => {
                    let tc = text_cond(&mut q, d, "it.value", c)?;
                    format!(
                        "r.run_uuid IN (SELECT it.run_uuid FROM input_tags it WHERE it.key = 'mlflow.data.context' AND {tc})"
                    )
                }
                other => return Err(Error::invalid(format!("Invalid dataset key '{other}'"))),
            },
        };
        wh.push(cond);
    }
    q.push("SELECT r.run_uuid FROM runs r");
    q.push(&joins);
    q.push(" WHERE ");
    q.push(&wh.join(" AND "));
    q.push(" ORDER BY ");
    q.push(&order_sql.join(", "));
    page(&mut q, offset, limit);
    Ok(q)
}

// ------------------------------------------------------------ experiments

fn exp_attr_col(key: &str) -> Result<&'static str> {
    Ok(match key {
        "name" => "e.name",
        "experiment_id" => "e.experiment_id",
        "creation_time" => "e.creation_time",
        "last_update_time" => "e.last_update_time",
        other => return Err(Error::invalid(format!("Invalid attribute key '{other}'"))),
    })
}

/// SQL selecting one page of experiment ids.
pub(crate) fn experiments_query(
    d: Dialect,
    view: ViewType,
    clauses: &[Clause],
    order: &[OrderBy],
    offset: usize,
    limit: usize,
) -> Result<Sql> {
    let mut q = Sql::new("SELECT e.experiment_id FROM experiments e WHERE ");
    let mut wh = vec![lifecycle_cond("e.lifecycle_stage", view)];
    for c in clauses {
        wh.push(match c.entity {
            Entity::Tag => tag_cond(
                &mut q,
                d,
                "experiment_tags",
                "t.experiment_id = e.experiment_id",
                c,
            )?,
            Entity::Attribute => {
                let col = exp_attr_col(&c.key)?;
                if c.key == "name" {
                    text_cond(&mut q, d, col, c)?
                } else {
                    num_cond(&mut q, col, c)?
                }
            }
            _ => {
                return Err(Error::invalid(format!(
                    "Invalid filter on '{}' for experiments",
                    c.key
                )))
            }
        });
    }
    q.push(&wh.join(" AND "));
    let mut ord = Vec::new();
    let order: Vec<OrderBy> = if order.is_empty() {
        vec![OrderBy {
            entity: Entity::Attribute,
            key: "creation_time".into(),
            ascending: false,
        }]
    } else {
        order.to_vec()
    };
    let mut saw_id = false;
    for ob in &order {
        if ob.entity != Entity::Attribute {
            return Err(Error::invalid(format!(
                "Invalid order_by key '{}' for experiments",
                ob.key
            )));
        }
        saw_id |= ob.key == "experiment_id";
        ord.push(format!(
            "{} {}",
            exp_attr_col(&ob.key)?,
            if ob.ascending { "ASC" } else { "DESC" }
        ));
    }
    if !saw_id {
        ord.push("e.experiment_id ASC".into());
    }
    q.push(" ORDER BY ").push(&ord.join(", "));
    page(&mut q, offset, limit);
    Ok(q)
}

/// `EXISTS` condition on a `(…, key, value)` tag table aliased `t`.
fn tag_cond(q: &mut Sql, d: Dialect, table: &str, link: &str, c: &Clause) -> Result<String> {
    let k = q.s(&c.key);
    Ok(match c.comparator {
        Comparator::IsNull => {
            format!("NOT EXISTS (SELECT 1 FROM {table} t WHERE {link} AND t.key = {k})")
        }
        Comparator::IsNotNull => {
            format!("EXISTS (SELECT 1 FROM {table} t WHERE {link} AND t.key = {k})")
        }
        _ => {
            let tc = text_cond(q, d, "t.value", c)?;
            format!("EXISTS (SELECT 1 FROM {table} t WHERE {link} AND t.key = {k} AND {tc})")
        }
    })
}

/// The tag MLflow uses to mark prompts in the model registry.
const IS_PROMPT_TAG: &str = "mlflow.prompt.is_prompt";

/// Tag condition for registry searches. The client adds
/// ``tags.`mlflow.prompt.is_prompt` != 'true'`` to every search to exclude
/// prompts; models do not carry that tag at all, so (as MLflow's own store
/// does) a clause on it becomes "is / is not a prompt" rather than a plain
/// tag comparison that would drop every untagged model.
fn registry_tag_cond(
    q: &mut Sql,
    d: Dialect,
    table: &str,
    link: &str,
    c: &Clause,
) -> Result<String> {
    if c.key != IS_PROMPT_TAG {
        return tag_cond(q, d, table, link, c);
    }
    let value = match &c.value {
        FilterValue::Str(v) => v.to_ascii_lowercase(),
        _ => String::new(),
    };
    let wants_prompts = matches!(
        (&c.comparator, value.as_str()),
        (Comparator::Eq, "true") | (Comparator::Ne, "false")
    );
    let k = q.s(IS_PROMPT_TAG);
    let t = q.s("true");
    let exists = format!(
        "EXISTS (SELECT 1 FROM {table} t WHERE {link} AND t.key = {k} AND LOWER(t.value) = {t})"
    );
    Ok(if wants_prompts {
        exists
    } else {
        format!("NOT {exists}")
    })
}

// ------------------------------------------------------------ registered models

fn rm_attr_col(key: &str) -> Result<&'static str> {
    Ok(match key {
        "name" => "m.name",
        "creation_timestamp" => "m.creation_time",
        "last_updated_timestamp" => "m.last_updated_time",
        other => return Err(Error::invalid(format!("Invalid attribute key '{other}'"))),
    })
}

/// SQL selecting one page of registered model names.
pub(crate) fn registered_models_query(
    d: Dialect,
    clauses: &[Clause],
    order: &[OrderBy],
    offset: usize,
    limit: usize,
) -> Result<Sql> {
    let mut q = Sql::new("SELECT m.name FROM registered_models m WHERE 1 = 1");
    for c in clauses {
        let cond = match c.entity {
            Entity::Tag => {
                registry_tag_cond(&mut q, d, "registered_model_tags", "t.name = m.name", c)?
            }
            Entity::Attribute => {
                let col = rm_attr_col(&c.key)?;
                if c.key == "name" {
                    text_cond(&mut q, d, col, c)?
                } else {
                    num_cond(&mut q, col, c)?
                }
            }
            _ => {
                return Err(Error::invalid(format!(
                    "Invalid filter on '{}' for registered models",
                    c.key
                )))
            }
        };
        q.push(" AND ").push(&cond);
    }
    let mut ord = Vec::new();
    let mut saw_name = false;
    for ob in order {
        if ob.entity != Entity::Attribute {
            return Err(Error::invalid(format!(
                "Invalid order_by key '{}' for registered models",
                ob.key
            )));
        }
        saw_name |= ob.key == "name";
        ord.push(format!(
            "{} {}",
            rm_attr_col(&ob.key)?,
            if ob.ascending { "ASC" } else { "DESC" }
        ));
    }
    if !saw_name {
        ord.push("m.name ASC".into());
    }
    q.push(" ORDER BY ").push(&ord.join(", "));
    page(&mut q, offset, limit);
    Ok(q)
}

// ------------------------------------------------------------ model versions

fn mv_attr_col(key: &str) -> Result<&'static str> {
    Ok(match key {
        "name" => "v.name",
        "version_number" => "v.version",
        "run_id" => "v.run_id",
        "source_path" => "v.source",
        "current_stage" => "v.current_stage",
        "model_id" => "v.model_id",
        "creation_timestamp" => "v.creation_time",
        "last_updated_timestamp" => "v.last_updated_time",
        other => return Err(Error::invalid(format!("Invalid attribute key '{other}'"))),
    })
}

/// SQL selecting one page of `(name, version)` of model versions.
pub(crate) fn model_versions_query(
    d: Dialect,
    clauses: &[Clause],
    order: &[OrderBy],
    offset: usize,
    limit: usize,
) -> Result<Sql> {
    let mut q = Sql::new("SELECT v.name, v.version FROM model_versions v WHERE 1 = 1");
    for c in clauses {
        let cond = match c.entity {
            Entity::Tag => registry_tag_cond(
                &mut q,
                d,
                "model_version_tags",
                "t.name = v.name AND t.version = v.version",
                c,
            )?,
            Entity::Attribute => {
                let col = mv_attr_col(&c.key)?;
                if matches!(
                    c.key.as_str(),
                    "version_number" | "creation_timestamp" | "last_updated_timestamp"
                ) {
                    num_cond(&mut q, col, c)?
                } else {
                    text_cond(&mut q, d, col, c)?
                }
            }
            _ => {
                return Err(Error::invalid(format!(
                    "Invalid filter on '{}' for model versions",
                    c.key
                )))
            }
        };
        q.push(" AND ").push(&cond);
    }
    let mut ord = Vec::new();
    for ob in order {
        if ob.entity != Entity::Attribute {
            return Err(Error::invalid(format!(
                "Invalid order_by key '{}' for model versions",
                ob.key
            )));
        }
        ord.push(order_nulls_last(mv_attr_col(&ob.key)?, ob.ascending));
    }
    ord.push("v.name ASC".into());
    ord.push("v.version DESC".into());
    q.push(" ORDER BY ").push(&ord.join(", "));
    page(&mut q, offset, limit);
    Ok(q)
}

// ------------------------------------------------------------ logged models

fn lm_attr_col(key: &str) -> Result<&'static str> {
    Ok(match key {
        "name" => "lm.name",
        "model_id" => "lm.model_id",
        "model_type" => "lm.model_type",
        "status" => "lm.status",
        "source_run_id" => "lm.source_run_id",
        "creation_timestamp" => "lm.creation_time",
        "last_updated_timestamp" => "lm.last_updated_time",
        other => return Err(Error::invalid(format!("Invalid attribute key '{other}'"))),
    })
}

fn normalize_status(s: &str) -> String {
    let up = s.to_ascii_uppercase();
    if up.starts_with("LOGGED_MODEL_") {
        up
    } else {
        format!("LOGGED_MODEL_{up}")
    }
}

/// SQL selecting one page of logged model ids.
pub(crate) fn logged_models_query(
    d: Dialect,
    exp_ids: &[i64],
    clauses: &[Clause],
    order: &[OrderBy],
    offset: usize,
    limit: usize,
) -> Result<Sql> {
    let mut q =
        Sql::new("SELECT lm.model_id FROM logged_models lm WHERE lm.lifecycle_stage = 'active'");
    let ids: Vec<String> = exp_ids.iter().map(|i| q.i(*i)).collect();
    q.push(&format!(" AND lm.experiment_id IN ({})", ids.join(", ")));
    for c in clauses {
        let cond = match c.entity {
            Entity::Tag => tag_cond(
                &mut q,
                d,
                "logged_model_tags",
                "t.model_id = lm.model_id",
                c,
            )?,
            Entity::Param => tag_cond(
                &mut q,
                d,
                "logged_model_params",
                "t.model_id = lm.model_id",
                c,
            )?,
            Entity::Metric => {
                let k = q.s(&c.key);
                match c.comparator {
                    Comparator::IsNull | Comparator::IsNotNull => {
                        let not = if c.comparator == Comparator::IsNull {
                            "NOT "
                        } else {
                            ""
                        };
                        format!("{not}EXISTS (SELECT 1 FROM logged_model_metrics mm WHERE mm.model_id = lm.model_id AND mm.key = {k})")
                    }
                    _ => {
                        let mc = metric_cond(&mut q, "mm", c)?;
                        format!(
                            "EXISTS (SELECT 1 FROM logged_model_metrics mm WHERE mm.model_id = lm.model_id AND mm.key = {k} AND {mc})"
                        )
                    }
                }
            }
            Entity::Attribute => {
                let col = lm_attr_col(&c.key)?;
                if matches!(
                    c.key.as_str(),
                    "creation_timestamp" | "last_updated_timestamp"
                ) {
                    num_cond(&mut q, col, c)?
                } else if c.key == "status"
                    && !matches!(c.comparator, Comparator::Like | Comparator::ILike)
                {
                    let mut c2 = c.clone();
                    c2.value = match &c.value {
                        FilterValue::Str(s) => FilterValue::Str(normalize_status(s)),
                        FilterValue::List(l) => {
                            FilterValue::List(l.iter().map(|s| normalize_status(s)).collect())
                        }
                        other => other.clone(),
                    };
                    text_cond(&mut q, d, col, &c2)?
                } else {
                    text_cond(&mut q, d, col, c)?
                }
            }
            Entity::Dataset => {
                return Err(Error::invalid(
                    "Invalid filter on datasets for logged models",
                ))
            }
        };
        q.push(" AND ").push(&cond);
    }
    let mut ord = Vec::new();
    let mut saw_created = false;
    for ob in order {
        let col = match ob.entity {
            Entity::Attribute => {
                saw_created |= ob.key == "creation_timestamp";
                lm_attr_col(&ob.key)?.to_string()
            }
            Entity::Metric => {
                let k = q.s(&ob.key);
                format!(
                    "(SELECT MAX(mm.value) FROM logged_model_metrics mm WHERE mm.model_id = lm.model_id AND mm.key = {k} AND mm.is_nan = 0)"
                )
            }
            Entity::Param | Entity::Tag => {
                let table = if ob.entity == Entity::Param {
                    "logged_model_params"
                } else {
                    "logged_model_tags"
                };
                let k = q.s(&ob.key);
                format!("(SELECT t.value FROM {table} t WHERE t.model_id = lm.model_id AND t.key = {k})")
            }
            Entity::Dataset => return Err(Error::invalid("Cannot order logged models by dataset")),
        };
        ord.push(order_nulls_last(&col, ob.ascending));
    }
    if !saw_created {
        ord.push("lm.creation_time DESC".into());
    }
    ord.push("lm.model_id ASC".into());
    q.push(" ORDER BY ").push(&ord.join(", "));
    page(&mut q, offset, limit);
    Ok(q)
}
