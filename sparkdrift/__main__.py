from sparkdrift.cli import main

raise SystemExit(main())
