"""`python -m admin.cli`: the `keap-orders` command without its console script (tests, benches, a bare checkout)."""
from admin.cli import main

main()
