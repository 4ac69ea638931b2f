//! `wasi:otel/metrics@0.2.0-rc.2`: measurements the guests report, merged into the
//! host's metrics ([`crate::otel_metrics::Metrics::record_guest`], where the rules and
//! how Spin 4 differs are written). Without metrics export the call does nothing and
//! succeeds, as in Spin.

use super::bindings::wasi::otel::{metrics, types};
use super::state::SpinView;
use crate::otel_metrics::{GuestData, GuestMetric, Number};
use opentelemetry::{InstrumentationScope, KeyValue};

impl metrics::Host for SpinView<'_> {
    fn export(
        &mut self,
        exported: metrics::ResourceMetrics,
    ) -> wasmtime::Result<Result<(), metrics::Error>> {
        let Some(sink) = self.grants.span_sink.as_ref().and_then(|s| s.metrics()) else {
            return Ok(Ok(()));
        };
        // The resource is the host's: a guest's own resource attributes are not kept.
        let mut dropped = 0;
        for scope_metrics in exported.scope_metrics {
            let scope = scope(scope_metrics.scope);
            let metrics = scope_metrics.metrics.into_iter().map(metric).collect();
            dropped += sink.record_guest(&scope, metrics);
        }
        Ok(if dropped == 0 {
            Ok(())
        } else {
            Err(format!(
                "{dropped} data points could not be merged and were dropped"
            ))
        })
    }
}

fn scope(scope: types::InstrumentationScope) -> InstrumentationScope {
    let mut builder = InstrumentationScope::builder(scope.name);
    if let Some(version) = scope.version {
        builder = builder.with_version(version);
    }
    if let Some(url) = scope.schema_url {
        builder = builder.with_schema_url(url);
    }
    builder.build()
}

fn number(n: metrics::MetricNumber) -> Number {
    match n {
        metrics::MetricNumber::F64(v) => Number::F64(v),
        metrics::MetricNumber::S64(v) => Number::I64(v),
        metrics::MetricNumber::U64(v) => Number::U64(v),
    }
}

/// The attributes whose value is the JSON the interface specifies; the others are
/// left out (the point is still recorded, as for a span's attributes).
fn attributes(list: Vec<types::KeyValue>) -> Vec<KeyValue> {
    list.into_iter()
        .filter_map(|kv| Some(KeyValue::new(kv.key, super::guest_spans::value(&kv.value)?)))
        .collect()
}

fn delta(temporality: metrics::Temporality) -> bool {
    // `low-memory` is the SDK's delta for counters and histograms.
    !matches!(temporality, metrics::Temporality::Cumulative)
}

fn metric(metric: metrics::Metric) -> GuestMetric {
    use metrics::MetricData as D;
    let sum = |sum: metrics::Sum| GuestData::Sum {
        monotonic: sum.is_monotonic,
        delta: delta(sum.temporality),
        points: sum
            .data_points
            .into_iter()
            .map(|p| (attributes(p.attributes), number(p.value)))
            .collect(),
    };
    let gauge = |gauge: metrics::Gauge| GuestData::Gauge {
        points: gauge
            .data_points
            .into_iter()
            .map(|p| (attributes(p.attributes), number(p.value)))
            .collect(),
    };
    let histogram = |h: metrics::Histogram, integer: bool| GuestData::Histogram {
        delta: delta(h.temporality),
        integer,
        // Every point of one instrument has the same boundaries: the first point's.
        bounds: h
            .data_points
            .first()
            .map(|p| p.bounds.clone())
            .unwrap_or_default(),
        points: h
            .data_points
            .into_iter()
            .map(|p| (attributes(p.attributes), p.count, number(p.sum)))
            .collect(),
    };
    let data = match metric.data {
        D::F64Sum(s) | D::U64Sum(s) | D::S64Sum(s) => sum(s),
        D::F64Gauge(g) | D::U64Gauge(g) | D::S64Gauge(g) => gauge(g),
        D::U64Histogram(h) => histogram(h, true),
        D::F64Histogram(h) | D::S64Histogram(h) => histogram(h, false),
        D::F64ExponentialHistogram(h)
        | D::U64ExponentialHistogram(h)
        | D::S64ExponentialHistogram(h) => GuestData::Unmerged {
            points: h.data_points.len(),
        },
    };
    GuestMetric {
        name: metric.name,
        unit: metric.unit,
        description: metric.description,
        data,
    }
}
