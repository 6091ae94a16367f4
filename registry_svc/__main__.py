from registry_svc.server import main

raise SystemExit(main())
