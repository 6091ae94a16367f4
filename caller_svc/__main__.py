from caller_svc.server import main

raise SystemExit(main())
