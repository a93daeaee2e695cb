//! List pagination and the `meta` envelope (CONTRACT.md §6).
//!
//! Records are listed newest first. `next_page_url` carries `PageToken=PA{seq}` (records older
//! than the last one shown) and `previous_page_url` `PageToken=PB{seq}` (newer than the first
//! one shown), where `seq` is the store's insertion order. Twilio's other v1 APIs put a SID
//! after `PA`/`PB`; clients treat the token as opaque, and an order number keeps a token valid
//! even when the record it points at is deleted meanwhile [GUESS, documented in the README].
//! Without a token, `Page=N` skips `N × PageSize` records.

use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::form::{encode, Params};
use crate::store::{Cursor, Record};

/// The default and largest page sizes [SPEC].
pub const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 1000;

/// What page a list request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// `PageSize`.
    pub size: u32,
    /// `Page` (client state; used as an offset only without a token).
    pub page: u64,
    /// `PageToken`, decoded.
    pub token: Option<Cursor>,
}

impl PageRequest {
    /// Reads `PageSize`, `Page` and `PageToken` from the query.
    pub fn parse(query: &Params) -> Result<PageRequest, ApiError> {
        let size = match query.get("PageSize") {
            None => DEFAULT_PAGE_SIZE,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
                _ => {
                    return Err(ApiError::bad_param(format!(
                        "Invalid value for parameter PageSize: {v:?} is not an integer from 1 to {MAX_PAGE_SIZE}"
                    )))
                }
            },
        };
        let page = match query.get("Page") {
            None => 0,
            Some(v) => v.parse::<u64>().map_err(|_| {
                ApiError::bad_param(format!(
                    "Invalid value for parameter Page: {v:?} is not a non-negative integer"
                ))
            })?,
        };
        let token = match query.get("PageToken") {
            None | Some("") => None,
            Some(t) => Some(parse_token(t).ok_or_else(|| {
                ApiError::bad_param(format!("Invalid value for parameter PageToken: {t:?}"))
            })?),
        };
        Ok(PageRequest { size, page, token })
    }

    /// Where the store should start, and how many records to ask for (one extra, to learn
    /// whether another page follows).
    pub fn cursor(&self) -> (Cursor, u32) {
        let cursor = self
            .token
            .unwrap_or_else(|| Cursor::Offset(self.page.saturating_mul(u64::from(self.size))));
        (cursor, self.size + 1)
    }
}

fn parse_token(token: &str) -> Option<Cursor> {
    let (kind, seq) = token.split_at_checked(2)?;
    let seq: i64 = seq.parse().ok().filter(|n| *n > 0)?;
    match kind {
        "PA" => Some(Cursor::After(seq)),
        "PB" => Some(Cursor::Before(seq)),
        _ => None,
    }
}

/// A list page ready to render: the records of this page (the extra one removed) and which
/// neighbouring pages exist.
pub struct Page {
    /// The page's records, newest first.
    pub records: Vec<Record>,
    has_next: bool,
    has_previous: bool,
}

impl Page {
    /// Trims what the store returned for `req` to one page.
    pub fn new(req: &PageRequest, mut records: Vec<Record>) -> Page {
        let size = req.size as usize;
        let over = records.len() > size;
        let (has_next, has_previous) = match req.token {
            // Going back: the store returned the nearest newer records, newest first; an extra
            // one means yet newer records exist. Older ones exist: we came from them.
            Some(Cursor::Before(_)) => {
                if over {
                    records.drain(..records.len() - size);
                }
                (true, over)
            }
            Some(_) => {
                records.truncate(size);
                (over, true)
            }
            None => {
                records.truncate(size);
                (over, req.page > 0)
            }
        };
        Page {
            records,
            has_next,
            has_previous,
        }
    }

    /// The list envelope: `{key: [items], meta: {…}}`. `list_url` is the absolute URL of the
    /// list without a query; `filters` are echoed before `PageSize` and `Page`.
    pub fn envelope(
        &self,
        key: &str,
        items: Vec<Value>,
        req: &PageRequest,
        list_url: &str,
        filters: &[(&str, String)],
    ) -> Value {
        let page_url = |page: u64, token: Option<String>| -> String {
            let mut q: Vec<String> = filters
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v)))
                .collect();
            q.push(format!("PageSize={}", req.size));
            q.push(format!("Page={page}"));
            if let Some(t) = token {
                q.push(format!("PageToken={t}"));
            }
            format!("{list_url}?{}", q.join("&"))
        };
        let current_token = req.token.map(|c| match c {
            Cursor::After(s) => format!("PA{s}"),
            Cursor::Before(s) => format!("PB{s}"),
            Cursor::Offset(_) => unreachable!("tokens decode to After or Before only"),
        });
        let next = match self.records.last() {
            Some(last) if self.has_next => {
                Value::String(page_url(req.page + 1, Some(format!("PA{}", last.seq))))
            }
            _ => Value::Null,
        };
        let previous = if !self.has_previous || req.page == 0 && req.token.is_none() {
            Value::Null
        } else {
            let page = req.page.saturating_sub(1);
            match self.records.first() {
                Some(first) => Value::String(page_url(page, Some(format!("PB{}", first.seq)))),
                // Past the end: the previous page by offset.
                None => Value::String(page_url(page, None)),
            }
        };
        let mut body = Map::new();
        body.insert(key.to_owned(), Value::Array(items));
        body.insert(
            "meta".to_owned(),
            json!({
                "first_page_url": page_url(0, None),
                "key": key,
                "next_page_url": next,
                "page": req.page,
                "page_size": req.size,
                "previous_page_url": previous,
                "url": page_url(req.page, current_token),
            }),
        );
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Kind;

    fn req(q: &str) -> Result<PageRequest, ApiError> {
        PageRequest::parse(&Params::parse(q.as_bytes()).expect("query"))
    }

    fn recs(seqs: &[i64]) -> Vec<Record> {
        seqs.iter()
            .map(|&s| {
                let mut r = Record::new(Kind::Service, format!("ZS{s}"), "AC".into(), None, &1);
                r.seq = s;
                r
            })
            .collect()
    }

    #[test]
    fn parses_and_validates() {
        assert_eq!(
            req("").expect("ok"),
            PageRequest {
                size: 50,
                page: 0,
                token: None
            }
        );
        let r = req("PageSize=2&Page=3&PageToken=PA17").expect("ok");
        assert_eq!((r.size, r.page, r.token), (2, 3, Some(Cursor::After(17))));
        assert_eq!(
            req("PageToken=PB5").expect("ok").token,
            Some(Cursor::Before(5))
        );
        for bad in [
            "PageSize=0",
            "PageSize=1001",
            "PageSize=x",
            "Page=-1",
            "PageToken=PX1",
            "PageToken=PA",
            "PageToken=PA-3",
            "PageToken=P",
        ] {
            assert!(req(bad).is_err(), "{bad}");
        }
        assert_eq!(
            req("PageSize=3&Page=2").expect("ok").cursor(),
            (Cursor::Offset(6), 4)
        );
    }

    #[test]
    fn first_middle_and_back_pages() {
        let url = "http://h/v1/Services";
        let first = req("PageSize=2").expect("ok");
        let page = Page::new(&first, recs(&[9, 8, 7]));
        let v = page.envelope("services", vec![], &first, url, &[]);
        assert_eq!(
            v["meta"]["next_page_url"],
            "http://h/v1/Services?PageSize=2&Page=1&PageToken=PA8"
        );
        assert_eq!(v["meta"]["previous_page_url"], Value::Null);
        assert_eq!(v["meta"]["url"], "http://h/v1/Services?PageSize=2&Page=0");
        assert_eq!(
            v["meta"]["first_page_url"],
            "http://h/v1/Services?PageSize=2&Page=0"
        );
        assert_eq!(v["meta"]["key"], "services");

        let second = req("PageSize=2&Page=1&PageToken=PA8").expect("ok");
        let page = Page::new(&second, recs(&[7]));
        let v = page.envelope("services", vec![], &second, url, &[]);
        assert_eq!(v["meta"]["next_page_url"], Value::Null);
        assert_eq!(
            v["meta"]["previous_page_url"],
            "http://h/v1/Services?PageSize=2&Page=0&PageToken=PB7"
        );
        assert_eq!(
            v["meta"]["url"],
            "http://h/v1/Services?PageSize=2&Page=1&PageToken=PA8"
        );

        let back = req("PageSize=2&Page=0&PageToken=PB7").expect("ok");
        let page = Page::new(&back, recs(&[10, 9, 8]));
        assert_eq!(
            page.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [9, 8]
        );
        let v = page.envelope("services", vec![], &back, url, &[]);
        assert_eq!(
            v["meta"]["next_page_url"],
            "http://h/v1/Services?PageSize=2&Page=1&PageToken=PA8"
        );
    }

    #[test]
    fn filters_come_first_and_are_encoded() {
        let r = req("").expect("ok");
        let v = Page::new(&r, vec![]).envelope(
            "logs",
            vec![],
            &r,
            "http://h/v1/L",
            &[("StartDate", "2018-11-10T20:00:00Z".into())],
        );
        assert_eq!(
            v["meta"]["url"],
            "http://h/v1/L?StartDate=2018-11-10T20%3A00%3A00Z&PageSize=50&Page=0"
        );
    }
}
