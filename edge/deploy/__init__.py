"""Getting the daemon onto devices: offline install kits and SSH deploys.

``kit`` builds the offline kit (`emotion-edge package`), ``deploy`` installs it
on one host or many over SSH with an atomic switch and automatic rollback
(`emotion-edge deploy`). Workstation-side code: nothing here runs on the device;
the device side is the kit's shell scripts (systemd/install.sh, emotion-edge-ctl).
"""
