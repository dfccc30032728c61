from twilio_video_operator.cli import main

raise SystemExit(main())
