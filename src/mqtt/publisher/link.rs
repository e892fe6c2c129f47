//! The seam between the publisher task and rumqttc: a [`Link`] opens a
//! fresh client and event loop for each connection. [`Rumqtt`] is the real
//! one; the task's tests script a fake broker on paused time.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, QoS};

/// What one poll of an event loop yields.
pub(super) type Polled = Result<Event, ConnectionError>;

/// The requesting half of a connection. Each call queues a request and
/// never waits; `false` means the connection's loop is gone.
pub(super) trait Client: Send {
    /// A QoS 1 publish.
    fn publish(&self, topic: String, retain: bool, payload: Bytes) -> bool;
    /// A QoS 1 subscription.
    fn subscribe(&self, topic: String) -> bool;
    fn disconnect(&self) -> bool;
}

/// The event half of a connection: what rumqttc's `EventLoop::poll` says.
pub(super) trait Events: Send {
    fn poll(&mut self) -> Pin<Box<dyn Future<Output = Polled> + Send + '_>>;
}

/// Opens connections: a new client and event loop each time.
pub(super) trait Link: Send {
    fn open(&self, options: &MqttOptions) -> (Box<dyn Client>, Box<dyn Events>);
}

/// rumqttc; the client's request channel holds `capacity` requests.
pub(super) struct Rumqtt {
    pub capacity: usize,
}

impl Link for Rumqtt {
    fn open(&self, options: &MqttOptions) -> (Box<dyn Client>, Box<dyn Events>) {
        let (client, eventloop) = AsyncClient::new(options.clone(), self.capacity);
        (Box::new(client), Box::new(eventloop))
    }
}

impl Client for AsyncClient {
    fn publish(&self, topic: String, retain: bool, payload: Bytes) -> bool {
        self.try_publish(topic, QoS::AtLeastOnce, retain, payload)
            .is_ok()
    }

    fn subscribe(&self, topic: String) -> bool {
        self.try_subscribe(topic, QoS::AtLeastOnce).is_ok()
    }

    fn disconnect(&self) -> bool {
        self.try_disconnect().is_ok()
    }
}

impl Events for EventLoop {
    fn poll(&mut self) -> Pin<Box<dyn Future<Output = Polled> + Send + '_>> {
        Box::pin(EventLoop::poll(self))
    }
}
