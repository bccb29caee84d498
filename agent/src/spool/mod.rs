//! The spool: every accepted event, durable on the gateway (PRODUCT §4). The only module that uses sled.
