#!/usr/bin/python3
"""Drives one paho-mqtt 1.6.1 client for the interop tests.

Commands arrive on stdin, one JSON object a line; events leave on stdout, one JSON
object a line. The process exits by itself after `--timeout` seconds (default 20), so a
test that forgets it cannot leave it running.

Commands (field "op"):
  connect    {host, port, client_id, protocol: "3.1"|"3.1.1"|"5", clean_session?, clean_start?,
              session_expiry?, keepalive?, will?: {topic, payload, qos, retain, delay?, props?},
              transport?: "tcp"|"websockets", ws_path?}
  subscribe  {topic, qos, no_local?, retain_as_published?, retain_handling?, subscription_id?}
  unsubscribe {topic}
  publish    {topic, payload, qos, retain?, props?: {...}}
  disconnect {}            a normal DISCONNECT
  exit       {}
Events (field "ev"):
  connack {rc, session_present}, connack_raw {flags, rc} (every CONNACK, even one paho handles
  without calling on_connect), disconnect_raw {bytes} (a server DISCONNECT, hex), loop_ended {rc}, suback {mid, granted}, unsuback {mid}, published {mid} (the
  exchange finished: PUBACK / PUBCOMP received, or QoS 0 written), queued {mid} (publish() returned),
  message {topic, payload, qos, retain, props}, disconnected {rc}, error {message}
"""
import json
import os
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

PROTOCOLS = {"3.1": mqtt.MQTTv31, "3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}
out_lock = threading.Lock()


def emit(event):
    with out_lock:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


def rc_value(rc):
    # paho gives v5 reason codes as ReasonCodes objects and v3 codes as ints
    return rc.value if hasattr(rc, "value") else int(rc)


def props_to_json(props):
    if props is None:
        return {}
    data = {}
    for key, value in props.json().items():
        if key == "UserProperty":
            data[key] = [list(pair) for pair in value]
        elif isinstance(value, (bytes, bytearray)):
            data[key] = bytes(value).hex()
        else:
            data[key] = value
    return data


def json_to_props(packet_type, spec):
    props = Properties(packet_type)
    for key, value in (spec or {}).items():
        if key == "UserProperty":
            value = [tuple(pair) for pair in value]
        elif key == "CorrelationData":
            value = bytes.fromhex(value)
        setattr(props, key, value)
    return props


class Driver:
    def __init__(self):
        self.client = None
        self.version = None
        self.loop_thread = None
        self.running = False

    def connect(self, cmd):
        self.stop_loop()
        self.version = PROTOCOLS[cmd.get("protocol", "3.1.1")]
        v5 = self.version == mqtt.MQTTv5
        # reconnect_on_failure=False: paho must not retry a refused CONNECT with other settings
        transport = cmd.get("transport", "tcp")
        if v5:
            client = mqtt.Client(client_id=cmd.get("client_id", ""), protocol=self.version,
                                 transport=transport, reconnect_on_failure=False)
        else:
            client = mqtt.Client(client_id=cmd.get("client_id", ""), protocol=self.version, transport=transport,
                                 clean_session=cmd.get("clean_session", True), reconnect_on_failure=False)
        if transport == "websockets":
            client.ws_set_options(path=cmd.get("ws_path", "/mqtt"))
        # paho refuses to build some CONNECTs a broker must refuse (an empty client ID with
        # clean session 0, or on MQTT 3.1); these overrides make it send them anyway
        overrides = cmd.get("unsafe_overrides", {})
        if "client_id" in overrides:
            client._client_id = overrides["client_id"].encode("utf-8")
        if "clean_session" in overrides:
            client._clean_session = overrides["clean_session"]
        # every CONNACK as it came off the wire, also those paho handles without on_connect
        handle_connack = client._handle_connack

        def spy_connack():
            packet = client._in_packet["packet"]
            emit({"ev": "connack_raw", "flags": packet[0], "rc": packet[1]})
            return handle_connack()

        client._handle_connack = spy_connack
        # a server DISCONNECT as it came off the wire: paho 1.6.1 reads its reason code only
        # when properties follow it, and reports a short one as a lost connection
        handle_disconnect = client._handle_disconnect

        def spy_disconnect():
            emit({"ev": "disconnect_raw", "bytes": bytes(client._in_packet["packet"]).hex()})
            return handle_disconnect()

        client._handle_disconnect = spy_disconnect
        client.on_connect = self.on_connect
        client.on_message = self.on_message
        client.on_subscribe = self.on_subscribe
        client.on_unsubscribe = self.on_unsubscribe
        client.on_publish = self.on_publish
        client.on_disconnect = self.on_disconnect
        will = cmd.get("will")
        if will is not None:
            will_props = None
            if v5 and (will.get("delay") is not None or will.get("props")):
                will_props = json_to_props(PacketTypes.WILLMESSAGE, will.get("props"))
                if will.get("delay") is not None:
                    will_props.WillDelayInterval = will["delay"]
            client.will_set(will["topic"], will.get("payload", ""), will.get("qos", 0),
                            will.get("retain", False), properties=will_props)
        self.client = client
        keepalive = cmd.get("keepalive", 30)
        if v5:
            props = Properties(PacketTypes.CONNECT)
            if cmd.get("session_expiry") is not None:
                props.SessionExpiryInterval = cmd["session_expiry"]
            client.connect(cmd["host"], cmd["port"], keepalive,
                           clean_start=cmd.get("clean_start", True), properties=props)
        else:
            client.connect(cmd["host"], cmd["port"], keepalive)
        self.running = True
        self.loop_thread = threading.Thread(target=self.loop, args=(client,), daemon=True)
        self.loop_thread.start()

    def loop(self, client):
        # our own loop instead of loop_start(): paho's thread reconnects by itself, and a
        # test of takeover or refusal must see the client stay disconnected
        while self.running and self.client is client:
            rc = client.loop(timeout=0.05)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                emit({"ev": "loop_ended", "rc": rc})
                break

    def stop_loop(self):
        self.running = False
        if self.loop_thread is not None:
            self.loop_thread.join(2)
        self.loop_thread = None

    # callbacks; v5 and v3 signatures differ in their last arguments
    def on_connect(self, client, userdata, flags, rc, properties=None):
        emit({"ev": "connack", "rc": rc_value(rc), "session_present": bool(flags.get("session present")),
              "props": props_to_json(properties)})

    def on_message(self, client, userdata, msg):
        emit({"ev": "message", "topic": msg.topic, "payload": msg.payload.decode("utf-8", "replace"),
              "qos": msg.qos, "retain": bool(msg.retain), "props": props_to_json(getattr(msg, "properties", None))})

    def on_subscribe(self, client, userdata, mid, granted, properties=None):
        emit({"ev": "suback", "mid": mid, "granted": [rc_value(g) for g in granted]})

    def on_unsubscribe(self, client, userdata, mid, properties=None, reason_codes=None):
        emit({"ev": "unsuback", "mid": mid})

    def on_publish(self, client, userdata, mid):
        emit({"ev": "published", "mid": mid})

    def on_disconnect(self, client, userdata, rc, properties=None):
        emit({"ev": "disconnected", "rc": rc_value(rc)})

    def handle(self, cmd):
        op = cmd["op"]
        if op == "connect":
            self.connect(cmd)
        elif op == "subscribe":
            if self.version == mqtt.MQTTv5:
                options = SubscribeOptions(qos=cmd.get("qos", 0), noLocal=cmd.get("no_local", False),
                                           retainAsPublished=cmd.get("retain_as_published", False),
                                           retainHandling=cmd.get("retain_handling", 0))
                props = None
                if cmd.get("subscription_id") is not None:
                    props = Properties(PacketTypes.SUBSCRIBE)
                    props.SubscriptionIdentifier = cmd["subscription_id"]
                rc, mid = self.client.subscribe(cmd["topic"], options=options, properties=props)
            else:
                rc, mid = self.client.subscribe(cmd["topic"], cmd.get("qos", 0))
            emit({"ev": "subscribing", "mid": mid, "rc": rc})
        elif op == "unsubscribe":
            self.client.unsubscribe(cmd["topic"])
        elif op == "publish":
            props = None
            if self.version == mqtt.MQTTv5 and cmd.get("props"):
                props = json_to_props(PacketTypes.PUBLISH, cmd["props"])
            info = self.client.publish(cmd["topic"], cmd.get("payload", ""), cmd.get("qos", 0),
                                       cmd.get("retain", False), properties=props)
            emit({"ev": "queued", "mid": info.mid, "rc": info.rc})
        elif op == "disconnect":
            self.client.disconnect()
        elif op == "exit":
            self.stop_loop()
            os._exit(0)
        else:
            emit({"ev": "error", "message": "unknown op " + op})


def main():
    timeout = 20.0
    if len(sys.argv) > 2 and sys.argv[1] == "--timeout":
        timeout = float(sys.argv[2])
    watchdog = threading.Timer(timeout, lambda: os._exit(3))
    watchdog.daemon = True
    watchdog.start()
    driver = Driver()
    emit({"ev": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            driver.handle(json.loads(line))
        except Exception as err:  # report, keep serving: the test decides what it means
            emit({"ev": "error", "message": "%s: %s" % (type(err).__name__, err)})
    os._exit(0)


if __name__ == "__main__":
    main()
