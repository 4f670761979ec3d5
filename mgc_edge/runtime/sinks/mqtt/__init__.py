"""Publishing to an MQTT broker (`webcam --publish`): `config` (the URL, topics, options; standard library),
`spool` (the on-disk log of what is on its way), `client` (paho-mqtt, imported only here and only when asked),
`publisher` (the spool and the broker together), `sink` (the loop's events and the box's status)."""

from __future__ import annotations

from mgc_edge.runtime.sinks.base import BaseSink, SinkContext, SinkOptions


def check(options: SinkOptions, count: int) -> None:
    """Nothing left to refuse: `--publish` and its options were parsed into `options.publish`
    (config.publish_options)."""


def build(context: SinkContext) -> BaseSink | None:
    """`--publish mqtt://...`: connected now (a refused password or certificate stops the run here, before the
    loop); closed with the run."""
    options = context.options.publish
    if options is None:
        return None
    from mgc_edge.runtime.sinks.mqtt.sink import MqttSink, live_url

    live = live_url(context.options.serve)
    sink = MqttSink(options, context.model_name, context.status, context.notify, live, context.say)
    context.say(
        f"Publishing to {options.broker.url} as box {options.box!r} (rate {options.rate_text}, "
        f"QoS {options.qos}; spool {options.spool_dir})."
    )
    return sink
