from rsna_pkg.cli import main

raise SystemExit(main())
