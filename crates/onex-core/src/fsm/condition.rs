//! Transition guard expressions: `field op value`, parsed once, evaluated with typed comparison.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value as Json;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
    /// `in`: the field equals one of a list.
    In,
    /// `not_in`
    NotIn,
    /// `contains`: a string contains a substring, or a list contains an element.
    Contains,
    /// `matches`: a string matches a regular expression.
    Matches,
    /// `exists`: the field is present and not null.
    Exists,
    /// `not_exists`
    NotExists,
    /// `min_length`: a string, list or object has at least N elements.
    MinLength,
    /// `max_length`
    MaxLength,
}

/// Every operator spelling, for error messages.
pub const OPERATORS: &str = "== != < > <= >= in not_in contains matches exists not_exists min_length max_length \
                             (and upstream's words: equals not_equals less_than greater_than \
                             less_than_or_equal greater_than_or_equal)";

impl Operator {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "==" | "equals" => Self::Eq,
            "!=" | "not_equals" => Self::Ne,
            "<" | "less_than" => Self::Lt,
            ">" | "greater_than" => Self::Gt,
            "<=" | "less_than_or_equal" => Self::Le,
            ">=" | "greater_than_or_equal" => Self::Ge,
            "in" => Self::In,
            "not_in" => Self::NotIn,
            "contains" => Self::Contains,
            "matches" => Self::Matches,
            "exists" => Self::Exists,
            "not_exists" => Self::NotExists,
            "min_length" => Self::MinLength,
            "max_length" => Self::MaxLength,
            _ => return None,
        })
    }

    fn takes_value(self) -> bool {
        !matches!(self, Self::Exists | Self::NotExists)
    }
}

/// A parsed guard expression.
#[derive(Debug, Clone)]
pub struct Expression {
    field: Vec<String>,
    operator: Operator,
    value: Json,
    regex: Option<regex_lite::Regex>,
    source: String,
    /// Why the expression cannot be evaluated, for one loaded with a deferred failure.
    broken: Option<String>,
}

impl PartialEq for Expression {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn parse_literal(text: &str) -> Json {
    if let Ok(v) = serde_json::from_str::<Json>(text) {
        return v;
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        let items = inner.split(',').map(str::trim).filter(|s| !s.is_empty());
        return Json::Array(items.map(parse_literal).collect());
    }
    if let Some(inner) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        return Json::String(inner.to_owned());
    }
    Json::String(text.to_owned())
}

impl Expression {
    /// Parses `field op value` (`field exists` for the unary operators).
    pub fn parse(source: &str) -> Result<Self, String> {
        let trimmed = source.trim();
        let (field, rest) = trimmed
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("`{trimmed}` is not `field operator value`"))?;
        let rest = rest.trim_start();
        let (op_text, value_text) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let operator = Operator::parse(op_text)
            .ok_or_else(|| format!("unknown operator `{op_text}` in `{trimmed}`; expected one of: {OPERATORS}"))?;
        // Upstream writes the unary operators with a placeholder value: `name exists _`.
        let value_text = match value_text.trim() {
            "_" if !operator.takes_value() => "",
            other => other,
        };
        if operator.takes_value() == value_text.is_empty() {
            return Err(if operator.takes_value() {
                format!("operator `{op_text}` needs a value in `{trimmed}`")
            } else {
                format!("operator `{op_text}` takes no value in `{trimmed}`")
            });
        }
        let value = match operator {
            // Upstream lists are comma-separated without brackets: `status in active,pending`.
            Operator::In | Operator::NotIn if !value_text.starts_with('[') => {
                Json::Array(value_text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(parse_literal).collect())
            }
            _ if operator.takes_value() => parse_literal(value_text),
            _ => Json::Null,
        };
        let regex = match operator {
            Operator::Matches => {
                let pattern =
                    value.as_str().ok_or_else(|| format!("`matches` needs a pattern string in `{trimmed}`"))?;
                Some(regex_lite::Regex::new(pattern).map_err(|e| format!("bad pattern in `{trimmed}`: {e}"))?)
            }
            _ => None,
        };
        match operator {
            Operator::In | Operator::NotIn if !value.is_array() => {
                return Err(format!("`{op_text}` needs a list like [a, b] in `{trimmed}`"));
            }
            Operator::MinLength | Operator::MaxLength if value.as_u64().is_none() => {
                return Err(format!("`{op_text}` needs a non-negative integer in `{trimmed}`"));
            }
            _ => {}
        }
        Ok(Self {
            field: field.split('.').map(str::to_owned).collect(),
            operator,
            value,
            regex,
            source: trimmed.to_owned(),
            broken: None,
        })
    }

    /// An expression that did not parse, kept so a contract loads the way the Python runtime
    /// loads it: evaluating it fails with `why`, at the point the guard is reached.
    pub fn deferred(source: &str, why: String) -> Self {
        Self {
            field: Vec::new(),
            operator: Operator::Exists,
            value: Json::Null,
            regex: None,
            source: source.trim().to_owned(),
            broken: Some(why),
        }
    }

    /// Why this expression cannot be evaluated, if it was loaded with a deferred failure.
    pub fn deferred_failure(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// Evaluates against `context`; `Err` carries why the condition does not hold.
    pub fn evaluate(&self, context: &Json) -> Result<(), String> {
        if let Some(why) = &self.broken {
            return Err(format!("`{}` cannot be evaluated: {why}", self.source));
        }
        let found = self.field.iter().try_fold(context, |v, key| v.get(key)).filter(|v| !v.is_null());
        let holds = match (self.operator, found) {
            (Operator::Exists, f) => f.is_some(),
            (Operator::NotExists, f) => f.is_none(),
            (_, None) => return Err(format!("`{}` failed: field `{}` is missing", self.source, self.field.join("."))),
            (op, Some(actual)) => self.compare(op, actual),
        };
        if holds {
            Ok(())
        } else {
            let shown = found.map_or_else(|| "missing".to_owned(), ToString::to_string);
            Err(format!("`{}` failed: `{}` is {shown}", self.source, self.field.join(".")))
        }
    }

    fn compare(&self, op: Operator, actual: &Json) -> bool {
        let expected = &self.value;
        match op {
            Operator::Eq => typed_eq(actual, expected),
            Operator::Ne => !typed_eq(actual, expected),
            Operator::Lt => typed_cmp(actual, expected) == Some(Ordering::Less),
            Operator::Gt => typed_cmp(actual, expected) == Some(Ordering::Greater),
            Operator::Le => matches!(typed_cmp(actual, expected), Some(Ordering::Less | Ordering::Equal)),
            Operator::Ge => matches!(typed_cmp(actual, expected), Some(Ordering::Greater | Ordering::Equal)),
            Operator::In => expected.as_array().is_some_and(|list| list.iter().any(|e| typed_eq(actual, e))),
            Operator::NotIn => expected.as_array().is_some_and(|list| !list.iter().any(|e| typed_eq(actual, e))),
            Operator::Contains => match (actual, expected) {
                (Json::String(s), Json::String(sub)) => s.contains(sub.as_str()),
                (Json::Array(items), e) => items.iter().any(|i| typed_eq(i, e)),
                (Json::Object(map), Json::String(key)) => map.contains_key(key),
                _ => false,
            },
            Operator::Matches => match (actual, &self.regex) {
                (Json::String(s), Some(re)) => re.is_match(s),
                _ => false,
            },
            Operator::MinLength | Operator::MaxLength => {
                let Some(len) = length(actual) else { return false };
                let bound = expected.as_u64().unwrap_or(0);
                if op == Operator::MinLength { len >= bound } else { len <= bound }
            }
            Operator::Exists | Operator::NotExists => false,
        }
    }
}

fn length(v: &Json) -> Option<u64> {
    let n = match v {
        Json::String(s) => s.chars().count(),
        Json::Array(a) => a.len(),
        Json::Object(o) => o.len(),
        _ => return None,
    };
    Some(n as u64)
}

/// A number, or a string that spells one: numbers compare as numbers.
fn as_number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

fn typed_eq(a: &Json, b: &Json) -> bool {
    match (as_number(a), as_number(b)) {
        (Some(x), Some(y)) if a.is_number() || b.is_number() => x == y,
        _ => a == b,
    }
}

fn typed_cmp(a: &Json, b: &Json) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (as_number(a), as_number(b)) {
        return x.partial_cmp(&y);
    }
    match (a, b) {
        (Json::String(x), Json::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn holds(expr: &str, ctx: Json) -> bool {
        Expression::parse(expr).unwrap().evaluate(&ctx).is_ok()
    }

    #[test]
    fn numbers_compare_as_numbers_not_strings() {
        assert!(holds("count > 9", json!({"count": 10})));
        assert!(holds("count > 9", json!({"count": "10"})));
        assert!(!holds("count < 9", json!({"count": "10"})));
        assert!(holds("score == 1.0", json!({"score": 1})));
        assert!(holds("name < b", json!({"name": "a"})));
    }

    #[test]
    fn every_operator_evaluates() {
        let ctx = json!({"s": "healthy-db", "n": 3, "tags": ["a", "b"], "m": {"k": 1}, "nil": null});
        for (expr, expected) in [
            ("s == healthy-db", true),
            ("s != 'healthy-db'", false),
            ("n <= 3", true),
            ("n >= 4", false),
            ("n in [1, 2, 3]", true),
            ("s not_in [x, y]", true),
            ("s contains db", true),
            ("tags contains b", true),
            ("m contains k", true),
            ("s matches ^healthy", true),
            ("s matches ^sick", false),
            ("m.k exists", true),
            ("nil exists", false),
            ("nil not_exists", true),
            ("missing not_exists", true),
            ("s min_length 10", true),
            ("tags max_length 1", false),
        ] {
            assert_eq!(holds(expr, ctx.clone()), expected, "{expr}");
        }
    }

    #[test]
    fn upstream_word_operators_and_placeholders() {
        let ctx = json!({"n": 3, "s": "active", "id": "x"});
        for (expr, expected) in [
            ("n equals 3", true),
            ("n not_equals 3", false),
            ("n greater_than 2", true),
            ("n less_than 2", false),
            ("n greater_than_or_equal 3", true),
            ("n less_than_or_equal 2", false),
            ("id exists _", true),
            ("gone not_exists _", true),
            ("s in active,pending", true),
            ("s not_in done,failed", true),
            ("n in 3", true),
        ] {
            assert_eq!(holds(expr, ctx.clone()), expected, "{expr}");
        }
    }

    #[test]
    fn a_deferred_expression_fails_when_evaluated() {
        let e = Expression::deferred("node_id is_present", "unknown operator `is_present`".into());
        let why = e.evaluate(&json!({"node_id": 1})).unwrap_err();
        assert!(why.contains("node_id is_present") && why.contains("is_present"), "{why}");
    }

    #[test]
    fn failures_say_why() {
        let e = Expression::parse("retries < 3").unwrap();
        let reason = e.evaluate(&json!({"retries": 5})).unwrap_err();
        assert!(reason.contains("`retries` is 5"), "{reason}");
        let reason = e.evaluate(&json!({})).unwrap_err();
        assert!(reason.contains("missing"), "{reason}");
    }

    #[test]
    fn bad_expressions_are_refused() {
        for (expr, fragment) in [
            ("a ~= 1", "unknown operator `~=`"),
            ("a", "field operator value"),
            ("a ==", "needs a value"),
            ("a exists 1", "takes no value"),
            ("a matches ([", "bad pattern"),
            ("a min_length x", "integer"),
        ] {
            let err = Expression::parse(expr).unwrap_err();
            assert!(err.contains(fragment), "{expr}: {err}");
        }
    }
}
