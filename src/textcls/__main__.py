from textcls.cli import main

raise SystemExit(main())
