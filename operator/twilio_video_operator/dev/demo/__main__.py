from twilio_video_operator.dev.demo.cli import main

raise SystemExit(main())
