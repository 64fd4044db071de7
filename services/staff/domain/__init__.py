"""The staff's rules: roles and permissions, the password policy, lock-out. No I/O."""
