//! The response byte budget ([`ServerBuilder::max_response_bytes`](super::ServerBuilder::max_response_bytes)).
//!
//! A reply that lists messages is built from pages fetched from the channel, each sized so
//! that it fits in what is left of the budget even if every message in it is as large as
//! the largest seen so far, or as the largest a client can write (the body limit). The
//! reply stops once its JSON reaches the budget; it always holds at least one item, so a
//! message larger than the budget is still readable.
//!
//! Shared reads and claims advance with every page (the cursor moves past exactly what
//! the page returned; a claim holds exactly what it returned), so the messages a reply
//! leaves out are the next reply's. Dead letters have no cursor: their listing is fetched
//! again with a growing limit, and only the items not yet listed are added.

use std::collections::HashSet;
use std::future::Future;

use sssn::store::Seq;

use crate::error::ApiError;

/// The budget of one reply and the size to assume for messages not yet seen.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    /// Bytes of item JSON one reply may hold (at least one item is always returned).
    pub(crate) bytes: usize,
    /// The largest message to expect (the request body limit).
    pub(crate) expected_item: usize,
}

impl Budget {
    /// How many items the next fetch may ask for: what fits in `room` if each is as large
    /// as `largest` (or the expected size), never more than `remaining`; at least one when
    /// the reply is still empty.
    pub(crate) fn page(&self, room: usize, largest: usize, remaining: usize, empty: bool) -> usize {
        let per_item = largest.max(self.expected_item).max(1);
        let n = room / per_item;
        let n = if empty { n.max(1) } else { n };
        n.min(remaining)
    }
}

/// A JSON reply whose one array grows item by item: `{"<key>":[…]}`.
pub(crate) struct ArrayReply {
    body: Vec<u8>,
    items: usize,
    item_bytes: usize,
    largest: usize,
    /// Stopped by the budget (or an error after the first page) before `limit` was reached
    /// while more may be there.
    pub(crate) truncated: bool,
}

impl ArrayReply {
    pub(crate) fn new(key: &str) -> Self {
        let mut body = Vec::with_capacity(256);
        body.extend_from_slice(b"{\"");
        body.extend_from_slice(key.as_bytes());
        body.extend_from_slice(b"\":[");
        Self {
            body,
            items: 0,
            item_bytes: 0,
            largest: 0,
            truncated: false,
        }
    }

    pub(crate) fn push<T: serde::Serialize + ?Sized>(&mut self, item: &T) -> Result<(), ApiError> {
        let start = self.body.len();
        if self.items > 0 {
            self.body.push(b',');
        }
        serde_json::to_writer(&mut self.body, item).map_err(|e| {
            ApiError::new(
                sssn::ErrorKind::Internal,
                format!("encoding the response: {e}"),
            )
        })?;
        let len = self.body.len() - start;
        self.items += 1;
        self.item_bytes += len;
        self.largest = self.largest.max(len);
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.items
    }

    fn room(&self, budget: &Budget) -> usize {
        budget.bytes.saturating_sub(self.item_bytes)
    }

    pub(crate) fn finish(mut self) -> (Vec<u8>, bool) {
        self.body.extend_from_slice(b"]}");
        (self.body, self.truncated)
    }

    /// Closes the array and adds the fields of `head` (a struct or map serialised as a
    /// JSON object) after it: `{"<key>":[…],"field":…}`.
    pub(crate) fn finish_with<T: serde::Serialize>(
        mut self,
        head: &T,
    ) -> Result<(Vec<u8>, bool), ApiError> {
        let fields = serde_json::to_vec(head).map_err(|e| {
            ApiError::new(
                sssn::ErrorKind::Internal,
                format!("encoding the response: {e}"),
            )
        })?;
        self.body.push(b']');
        // `fields` is `{…}`: keep all but its opening brace.
        if fields.len() > 2 {
            self.body.push(b',');
            self.body.extend_from_slice(&fields[1..]);
        } else {
            self.body.push(b'}');
        }
        Ok((self.body, self.truncated))
    }
}

/// Fills `reply` from a source that moves on with every fetch (shared reads, claims):
/// `fetch(n)` returns up to `n` items, fewer only when there are no more.
pub(crate) async fn advancing<T, F, Fut>(
    reply: &mut ArrayReply,
    budget: Budget,
    limit: usize,
    mut fetch: F,
    mut encode: impl FnMut(&mut ArrayReply, &T) -> Result<(), ApiError>,
) -> Result<(), ApiError>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = sssn::Result<Vec<T>>>,
{
    loop {
        let remaining = limit.saturating_sub(reply.len());
        if remaining == 0 {
            return Ok(());
        }
        let n = budget.page(
            reply.room(&budget),
            reply.largest,
            remaining,
            reply.len() == 0,
        );
        if n == 0 {
            reply.truncated = true;
            return Ok(());
        }
        let page = match fetch(n).await {
            Ok(page) => page,
            // What earlier pages took is the caller's now (cursor moved, claims held):
            // answer with it; the error comes back on the next request.
            Err(e) if reply.len() > 0 => {
                tracing::warn!(error = %e, "a later page of a reply failed; answering with the earlier pages");
                reply.truncated = true;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let exhausted = page.len() < n;
        for item in &page {
            encode(reply, item)?;
        }
        drop(page);
        if exhausted {
            return Ok(());
        }
    }
}

/// Fills `reply` from a listing that starts over at every fetch (dead letters, oldest
/// first): `fetch(n)` returns the first `n`; items are told apart by their sequence.
pub(crate) async fn restarting<T, F, Fut>(
    reply: &mut ArrayReply,
    budget: Budget,
    limit: usize,
    mut fetch: F,
    seq: impl Fn(&T) -> Seq,
    mut encode: impl FnMut(&mut ArrayReply, &T) -> Result<(), ApiError>,
) -> Result<(), ApiError>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = sssn::Result<Vec<T>>>,
{
    let mut listed: HashSet<Seq> = HashSet::new();
    let mut asked = 0usize;
    loop {
        let remaining = limit.saturating_sub(reply.len());
        if remaining == 0 {
            return Ok(());
        }
        let more = budget.page(
            reply.room(&budget),
            reply.largest,
            remaining,
            reply.len() == 0,
        );
        if more == 0 {
            reply.truncated = true;
            return Ok(());
        }
        let n = (asked + more).min(limit);
        let items = match fetch(n).await {
            Ok(items) => items,
            Err(e) if reply.len() > 0 => {
                tracing::warn!(error = %e, "a later page of a reply failed; answering with the earlier pages");
                reply.truncated = true;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let exhausted = items.len() < n;
        asked = n;
        let mut added = 0;
        for item in &items {
            if reply.len() >= limit {
                break;
            }
            if listed.insert(seq(item)) {
                encode(reply, item)?;
                added += 1;
            }
        }
        if exhausted || added == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_fit_the_room_at_the_largest_size_seen() {
        let b = Budget {
            bytes: 8 << 20,
            expected_item: 1 << 20,
        };
        assert_eq!(b.page(8 << 20, 0, 10_000, true), 8);
        assert_eq!(b.page(8 << 20, 2 << 20, 10_000, false), 4);
        assert_eq!(b.page(100, 0, 10_000, false), 0);
        assert_eq!(b.page(100, 0, 10_000, true), 1, "an empty reply takes one");
        assert_eq!(b.page(8 << 20, 0, 3, true), 3, "never more than asked");
        assert_eq!(b.page(8 << 20, 0, 0, true), 0);
    }

    #[tokio::test]
    async fn an_advancing_source_stops_at_the_budget_and_never_loses_a_fetched_item() {
        let budget = Budget {
            bytes: 1000,
            expected_item: 100,
        };
        let mut source: Vec<String> = (0..50).map(|i| format!("{i:0>98}")).collect();
        source.reverse();
        let mut reply = ArrayReply::new("items");
        let mut fetched = 0;
        advancing(
            &mut reply,
            budget,
            usize::MAX,
            |n| {
                let page: Vec<String> = (0..n).filter_map(|_| source.pop()).collect();
                fetched += page.len();
                async move { Ok(page) }
            },
            |r, s: &String| r.push(s),
        )
        .await
        .unwrap();
        assert_eq!(reply.len(), fetched, "every fetched item is in the reply");
        assert!(reply.len() < 50);
        let (body, truncated) = reply.finish();
        assert!(truncated);
        assert!(body.len() <= 1000 + 32, "{}", body.len());
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["items"][0].as_str().unwrap().len(), 98);
    }

    #[tokio::test]
    async fn one_item_larger_than_the_budget_is_returned_alone() {
        let budget = Budget {
            bytes: 10,
            expected_item: 10,
        };
        let mut reply = ArrayReply::new("items");
        advancing(
            &mut reply,
            budget,
            5,
            |n| async move { Ok(vec!["x".repeat(100); n]) },
            |r, s: &String| r.push(s),
        )
        .await
        .unwrap();
        assert_eq!(reply.len(), 1);
        assert!(reply.finish().1);
    }

    #[tokio::test]
    async fn a_restarting_listing_adds_only_new_items() {
        let budget = Budget {
            bytes: 50,
            expected_item: 10,
        };
        let all: Vec<u64> = (1..=12).collect();
        let mut reply = ArrayReply::new("n");
        restarting(
            &mut reply,
            budget,
            100,
            |n| {
                let items: Vec<u64> = all.iter().copied().take(n).collect();
                async move { Ok(items) }
            },
            |s| *s,
            |r, s: &u64| r.push(s),
        )
        .await
        .unwrap();
        let (body, _) = reply.finish();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["n"],
            serde_json::json!([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
        );
    }
}
