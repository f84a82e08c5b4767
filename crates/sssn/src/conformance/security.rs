//! Rights: every operation checks the caller's role (read, write, admin).

use std::sync::Arc;

use super::{Harness, started, uid};
use crate::channel::PassthroughChannel;
use crate::error::ErrorKind;
use crate::security::{AclSecurity, Role};

pub async fn security_on_every_operation(h: &impl Harness) {
    let acl = Arc::new(AclSecurity::default());
    acl.grant("reader", Role::Read);
    acl.grant("worker", Role::Write);
    acl.grant("boss", Role::Admin);
    let q = started(h, PassthroughChannel::new(uid("p")).security(acl.clone())).await;
    fn denied<T: std::fmt::Debug>(r: crate::Result<T>) {
        assert_eq!(r.unwrap_err().kind(), ErrorKind::PermissionDenied);
    }
    assert_eq!(
        q.write("reader", &1).await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    let id = q.write("worker", &1).await.unwrap();
    assert_eq!(
        q.read("nobody", 1).await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        q.subscribe("nobody").await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(q.read("reader", 1).await.unwrap().len(), 1);
    assert_eq!(
        q.claim("reader", 1).await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    q.claim("worker", 1).await.unwrap();
    denied(q.ack("reader", std::slice::from_ref(&id)).await);
    denied(q.nack("reader", std::slice::from_ref(&id)).await);
    denied(q.clear("worker").await);
    denied(q.evict("worker", None, Some(0)).await);
    denied(q.remove("worker", std::slice::from_ref(&id)).await);
    assert_eq!(q.ack("worker", &[id]).await.unwrap().done.len(), 1);
    assert_eq!(q.clear("boss").await.unwrap(), 0);
}
