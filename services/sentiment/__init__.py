"""Financial sentiment monitor: stream scoring, entity buckets, surge alerts and alert e-mails."""
