//! Building a query whose conditions depend on what was asked (searches, filters): each value
//! gets the next `$N` placeholder as it is added, so the numbers always match the binds, and
//! values for `LIKE` are escaped in one place.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;

/// One bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Text(String),
    Int(i64),
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Text(s)
    }
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Text(s.to_owned())
    }
}

impl From<i64> for Arg {
    fn from(n: i64) -> Self {
        Arg::Int(n)
    }
}

/// The values of a query being built, in placeholder order.
#[derive(Debug, Default)]
pub struct Params {
    args: Vec<Arg>,
}

impl Params {
    pub fn new() -> Self {
        Params::default()
    }

    /// Adds a value and returns its placeholder (`$1`, `$2`, …) to write into the SQL.
    pub fn add(&mut self, arg: impl Into<Arg>) -> String {
        self.args.push(arg.into());
        format!("${}", self.args.len())
    }

    /// Binds every value, in order.
    pub fn bind_to(self, mut q: Query<'_, Any, AnyArguments>) -> Query<'_, Any, AnyArguments> {
        for arg in self.args {
            q = match arg {
                Arg::Text(s) => q.bind(s),
                Arg::Int(n) => q.bind(n),
            };
        }
        q
    }
}

/// `value` as a `LIKE` pattern matching itself literally (`%`, `_` and `\` escaped); use it
/// with `ESCAPE '\'`.
pub fn escape_like(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// A `LIKE … ESCAPE '\'` pattern for "contains `value`".
pub fn like_contains(value: &str) -> String {
    format!("%{}%", escape_like(value))
}

/// A `LIKE … ESCAPE '\'` pattern for "starts with `value`".
pub fn like_prefix(value: &str) -> String {
    format!("{}%", escape_like(value))
}

/// `" WHERE a AND b"`, or nothing when there are no conditions.
pub fn where_all(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_the_order_values_are_added() {
        let mut p = Params::new();
        assert_eq!(p.add("a"), "$1");
        assert_eq!(p.add(7i64), "$2");
        assert_eq!(p.add(String::from("b")), "$3");
        assert_eq!(
            p.args,
            vec![Arg::Text("a".into()), Arg::Int(7), Arg::Text("b".into())]
        );
    }

    #[test]
    fn like_patterns_match_their_value_literally() {
        assert_eq!(escape_like(r"50%_off\"), r"50\%\_off\\");
        assert_eq!(like_contains("a_b"), r"%a\_b%");
        assert_eq!(like_prefix("x%"), r"x\%%");
        assert_eq!(where_all(&[]), "");
        assert_eq!(
            where_all(&["a = $1".into(), "b = $2".into()]),
            " WHERE a = $1 AND b = $2"
        );
    }
}
