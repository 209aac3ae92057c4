"""What operators and other services talk to: the `keap-orders` command, the console's views of the ledger,
doctor, verify, estimate, OAuth login and the demo. It puts work on the queue only through producers/."""
