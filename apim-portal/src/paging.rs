//! WSO2 list responses: `{"count", "list", "pagination": {"offset", "limit", "total", "next",
//! "previous"}}`, and the `limit` / `offset` query parameters.

use serde::{Deserialize, Deserializer, Serialize};

/// Default page size (WSO2's).
pub const DEFAULT_LIMIT: i64 = 25;

/// `limit` / `offset` (and an optional search `query`).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    /// Page size, 1-1000 (default 25).
    #[serde(default, deserialize_with = "num")]
    pub limit: Option<i64>,
    /// Items to skip.
    #[serde(default, deserialize_with = "num")]
    pub offset: Option<i64>,
    /// Search: substring of name or context, or `tag:x`.
    #[serde(default)]
    pub query: Option<String>,
}

impl Paging {
    /// Effective `(limit, offset)`, clamped.
    pub fn get(&self) -> (i64, i64) {
        (
            self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, 1000),
            self.offset.unwrap_or(0).max(0),
        )
    }
}

/// Parses a number sent as a query string.
pub(crate) fn num<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| {
        s.parse::<i64>()
            .map_err(|_| serde::de::Error::custom(format!("'{s}' is not an integer")))
    })
    .transpose()
}

/// Paging links of a list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Pagination {
    /// Offset of this page.
    pub offset: i64,
    /// Page size.
    pub limit: i64,
    /// Total items.
    pub total: i64,
    /// Query string of the next page, empty when none.
    pub next: String,
    /// Query string of the previous page, empty when none.
    pub previous: String,
}

/// A page of items.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct List<T> {
    /// Items in this page.
    pub count: usize,
    /// The items.
    pub list: Vec<T>,
    /// Paging links.
    pub pagination: Pagination,
}

impl<T> List<T> {
    /// A page of `total` items.
    pub fn page(list: Vec<T>, limit: i64, offset: i64, total: i64) -> Self {
        let next = if offset + limit < total {
            format!("?limit={limit}&offset={}", offset + limit)
        } else {
            String::new()
        };
        let previous = if offset > 0 {
            format!("?limit={limit}&offset={}", (offset - limit).max(0))
        } else {
            String::new()
        };
        List {
            count: list.len(),
            list,
            pagination: Pagination {
                offset,
                limit,
                total,
                next,
                previous,
            },
        }
    }

    /// All of `items` as one page.
    pub fn all(list: Vec<T>) -> Self {
        let n = list.len() as i64;
        Self::page(list, n.max(1), 0, n)
    }

    /// Pages an in-memory list.
    pub fn slice(all: Vec<T>, paging: &Paging) -> Self {
        let (limit, offset) = paging.get();
        let total = all.len() as i64;
        let items = all
            .into_iter()
            .skip(offset as usize)
            .take(limit as usize)
            .collect();
        Self::page(items, limit, offset, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links() {
        let l = List::page(vec![1, 2], 2, 2, 5);
        assert_eq!(l.count, 2);
        assert_eq!(l.pagination.next, "?limit=2&offset=4");
        assert_eq!(l.pagination.previous, "?limit=2&offset=0");
        let last = List::page(vec![5], 2, 4, 5);
        assert_eq!(last.pagination.next, "");
    }
}
