from log_server.cli import main

raise SystemExit(main())
