//! The dummy's fictional GPUs: a pool whose devices a task holds for its lease and gives back,
//! so concurrent tasks never share one, as on a real host.

use std::sync::Mutex;

use runner_core::backend::{GpuDevice, GpuLease, RunContext};
use runner_core::plan::GpuRequest;
use runner_core::{BackendError, Failure};
use tokio::sync::Notify;

use crate::NAME;

/// The pool: every device, and which are held.
#[derive(Debug)]
pub(crate) struct Pool {
    devices: Vec<GpuDevice>,
    held: Mutex<Vec<bool>>,
    freed: Notify,
    next: std::sync::atomic::AtomicU64,
}

impl Pool {
    /// `count` devices named `name`.
    pub(crate) fn new(count: u32, name: &str) -> Pool {
        let devices = (0..count)
            .map(|index| GpuDevice {
                index,
                uuid: format!("GPU-dummy-{index}"),
                name: name.to_string(),
                memory_mib: 81_559,
            })
            .collect();
        Pool {
            devices,
            held: Mutex::new(vec![false; count as usize]),
            freed: Notify::new(),
            next: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// Hold `req.count` devices of `req.kind`, waiting while they are held by others; a
    /// request the pool can never satisfy is refused at once.
    pub(crate) async fn acquire(
        &self,
        req: &GpuRequest,
        cx: &RunContext,
    ) -> Result<GpuLease, BackendError> {
        let kind_ok = |d: &GpuDevice| {
            req.kind
                .as_deref()
                .is_none_or(|k| d.name.to_uppercase().contains(&k.to_uppercase()))
        };
        let matching = self.devices.iter().filter(|d| kind_ok(d)).count();
        if matching < req.count as usize {
            return Err(BackendError::new(
                NAME,
                Failure::BadConfig,
                format!(
                    "the dummy pool can never satisfy {} GPU(s) of kind {}: it has {matching} \
                     matching of {} ({})",
                    req.count,
                    req.kind.as_deref().unwrap_or("any"),
                    self.devices.len(),
                    self.devices.first().map_or("none", |d| d.name.as_str()),
                ),
            ));
        }
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(lease) = self.try_take(req.count as usize, &kind_ok) {
                return Ok(lease);
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = cx.cancel.cancelled() => {
                    return Err(BackendError::new(NAME, Failure::Cancelled, "cancelled while waiting for GPUs"));
                }
            }
        }
    }

    fn try_take(&self, count: usize, kind_ok: &dyn Fn(&GpuDevice) -> bool) -> Option<GpuLease> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let free: Vec<usize> = (0..self.devices.len())
            .filter(|&i| !held[i] && kind_ok(&self.devices[i]))
            .take(count)
            .collect();
        if free.len() < count {
            return None;
        }
        for &i in &free {
            held[i] = true;
        }
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(GpuLease {
            id: format!("dummy-{n}"),
            devices: free.iter().map(|&i| self.devices[i].clone()).collect(),
        })
    }

    /// Give a lease's devices back and wake the tasks waiting for them.
    pub(crate) fn release(&self, lease: &GpuLease) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        for d in &lease.devices {
            if let Some(h) = held.get_mut(d.index as usize) {
                *h = false;
            }
        }
        drop(held);
        self.freed.notify_waiters();
    }
}
