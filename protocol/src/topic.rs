//! The typed MQTT topic scheme (PRODUCT §6).
