//! spi
