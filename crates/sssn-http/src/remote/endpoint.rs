//! [`ChannelEndpoint`] for [`RemoteChannel`]: every channel operation, each one request.

use super::*;

#[async_trait]
impl ChannelEndpoint for RemoteChannel {
    fn channel_id(&self) -> &str {
        &self.inner.channel_id
    }

    fn kind(&self) -> Option<ChannelKind> {
        self.inner.kind.get().copied()
    }

    fn is_remote(&self) -> bool {
        true
    }

    async fn info(&self, caller: &Principal) -> Result<ChannelInfo, Error> {
        let info: ChannelInfo = self.inner.call(ChannelOp::Info, &[], caller, None).await?;
        if let Some(kind) = info.kind {
            let _ = self.inner.kind.set(kind);
        }
        Ok(info)
    }

    async fn write_batch(
        &self,
        caller: &Principal,
        payloads: Vec<Payload>,
    ) -> Result<Vec<String>, Error> {
        let Some(first) = payloads.first() else {
            return Ok(Vec::new());
        };
        let kind = if payloads.iter().all(|p| kind_of(p) == kind_of(first)) {
            kind_of(first)
        } else {
            PayloadKind::Mixed
        };
        let outcome = if payloads.len() == 1 {
            // v1's PUT, so a single write works against any v1-shaped server.
            let query: &[(&str, &str)] = match kind {
                PayloadKind::Message => &[("direct", "true")],
                PayloadKind::Content => &[("kind", "content")],
                _ => &[],
            };
            let body = encode(&WireItem(first, kind))?;
            self.inner
                .call::<wire::WriteResponse>(ChannelOp::Write, query, caller, Some(body))
                .await
                .map(|r| vec![r.item_id])
        } else {
            let items: Vec<WireItem<'_>> = payloads.iter().map(|p| WireItem(p, kind)).collect();
            let body = encode(&items)?;
            self.inner
                .call::<wire::BatchResponse>(
                    ChannelOp::WriteBatch,
                    &[("kind", kind.as_str())],
                    caller,
                    Some(body),
                )
                .await
                .map(|r| r.item_ids)
        };
        outcome.map_err(|e| with_rejected(e, payloads))
    }

    async fn read(
        &self,
        caller: &Principal,
        options: ReadOptions,
    ) -> Result<Vec<Arc<ChannelMessage>>, Error> {
        let limit = options.limit.to_string();
        let mut query = vec![
            ("limit", limit.as_str()),
            (
                "exclusive",
                if options.exclusive { "true" } else { "false" },
            ),
        ];
        if let Some(after) = &options.after {
            query.push(("after", after));
        }
        let r: wire::MessagesResponse = self
            .inner
            .call(ChannelOp::Read, &query, caller, None)
            .await?;
        Ok(r.messages.into_iter().map(Arc::new).collect())
    }

    async fn claim(&self, caller: &Principal, limit: usize) -> Result<Vec<Claimed>, Error> {
        let limit = limit.to_string();
        let r: wire::ClaimResponse = self
            .inner
            .call(ChannelOp::Claim, &[("limit", &limit)], caller, None)
            .await?;
        Ok(r.claims.into_iter().map(claimed).collect())
    }

    async fn settle(
        &self,
        caller: &Principal,
        ids: &[&str],
        how: Settle,
    ) -> Result<Settled, Error> {
        let (op, body) = match &how {
            Settle::Ack => (ChannelOp::Ack, ids_body(ids, None, None)?),
            Settle::Nack { delay } => (ChannelOp::Nack, ids_body(ids, *delay, None)?),
            Settle::Reject { reason } => (ChannelOp::Reject, ids_body(ids, None, Some(reason))?),
            Settle::Extend => (ChannelOp::Extend, ids_body(ids, None, None)?),
        };
        let r = self.inner.settle(op, caller, Some(body)).await?;
        Ok(r.settled(ids))
    }

    async fn history(&self, caller: &Principal, query: &History) -> Result<Vec<Entry>, Error> {
        let (limit, start, end);
        let params: Vec<(&str, &str)> = match query {
            History::Id(id) => vec![(api::HISTORY_MESSAGE_ID.name, id.as_str())],
            History::Between {
                start: s,
                end: e,
                limit: n,
            } => {
                (start, end, limit) = (s.to_string(), e.to_string(), n.to_string());
                vec![
                    (api::HISTORY_START.name, start.as_str()),
                    (api::HISTORY_END.name, end.as_str()),
                    (api::HISTORY_LIMIT.name, limit.as_str()),
                ]
            }
            History::Latest { limit: n } => {
                limit = n.to_string();
                vec![(api::HISTORY_LIMIT.name, limit.as_str())]
            }
        };
        let r: wire::HistoryResponse = self
            .inner
            .call(ChannelOp::History, &params, caller, None)
            .await?;
        Ok(r.entries
            .into_iter()
            .map(|e| Entry {
                seq: e.seq,
                message: Arc::new(e.message),
            })
            .collect())
    }

    async fn settle_and_claim(
        &self,
        caller: &Principal,
        ids: &[&str],
        how: Settle,
        limit: usize,
    ) -> Result<(Settled, Vec<Claimed>), Error> {
        if how != Settle::Ack {
            // Only the ack has a combined route.
            let settled = self.settle(caller, ids, how).await?;
            return Ok((settled, self.claim(caller, limit).await?));
        }
        let limit = limit.to_string();
        let body = ids_body(ids, None, None)?;
        let r: wire::AckAndClaimResponse = self
            .inner
            .call(
                ChannelOp::AckAndClaim,
                &[("limit", &limit)],
                caller,
                Some(body),
            )
            .await?;
        let settled = Settled {
            done: r.done,
            stale: r.stale,
        };
        Ok((settled, r.claims.into_iter().map(claimed).collect()))
    }

    async fn dead_letters(
        &self,
        caller: &Principal,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, Error> {
        let limit = limit.to_string();
        let r: wire::DeadLettersResponse = self
            .inner
            .call(ChannelOp::DeadLetters, &[("limit", &limit)], caller, None)
            .await?;
        Ok(r.dead_letters)
    }

    async fn redrive(&self, caller: &Principal, ids: &[&str]) -> Result<usize, Error> {
        let body = ids_body(ids, None, None)?;
        let r = self
            .inner
            .settle(ChannelOp::Redrive, caller, Some(body))
            .await?;
        Ok(r.count())
    }

    async fn clear(&self, caller: &Principal) -> Result<usize, Error> {
        let r = self.inner.settle(ChannelOp::Clear, caller, None).await?;
        Ok(r.count())
    }

    async fn evict(
        &self,
        caller: &Principal,
        before: Option<f64>,
        max_count: Option<usize>,
    ) -> Result<usize, Error> {
        let body = encode(&wire::EvictRequest { before, max_count })?;
        let r = self
            .inner
            .settle(ChannelOp::Evict, caller, Some(body))
            .await?;
        Ok(r.count())
    }

    async fn remove(&self, caller: &Principal, ids: &[&str]) -> Result<usize, Error> {
        let body = ids_body(ids, None, None)?;
        let r = self
            .inner
            .settle(ChannelOp::Remove, caller, Some(body))
            .await?;
        Ok(r.count())
    }

    async fn subscribe(
        &self,
        caller: &Principal,
        after: Option<Seq>,
    ) -> Result<Subscription, Error> {
        let auth = self.inner.auth(caller)?;
        let response = self.inner.open_events(&auth, after).await?;
        let (tx, rx) = mpsc::channel(1024);
        let cancel = CancellationToken::new();
        {
            let mut subs = self
                .inner
                .subscriptions
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let list = subs.entry(caller.id.clone()).or_default();
            list.retain(|c| !c.is_cancelled());
            list.push(cancel.clone());
        }
        let pump = Pump {
            inner: self.inner.clone(),
            auth,
            last: after,
            tx,
            cancel: cancel.clone(),
        };
        tokio::spawn(pump.run(response));
        Ok(Subscription::from_remote(
            self.inner.channel_id.clone(),
            caller.id.clone(),
            rx,
            cancel,
        ))
    }

    async fn unsubscribe(&self, caller: &Principal) {
        let list = self
            .inner
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&caller.id);
        for cancel in list.into_iter().flatten() {
            cancel.cancel();
        }
    }

    async fn stats(&self, caller: &Principal) -> Result<ChannelStats, Error> {
        let value: serde_json::Value = self.inner.call(ChannelOp::Stats, &[], caller, None).await?;
        serde_json::from_value(value).map_err(|e| {
            Error::new(
                ErrorKind::Remote,
                format!("unexpected response to 'stats': {e}"),
            )
        })
    }
}
