from router_svc.server import main

raise SystemExit(main())
