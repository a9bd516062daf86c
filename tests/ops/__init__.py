"""Operations: systemd notifications, readiness, install path, containers."""
