from designer.running.schedules import validate_cron, validate_timezone


def test_it_reads_cron_fields_in_their_usual_order():
    assert validate_cron("0 9 31 * *") == []
    assert validate_cron("*/5 * * * 1-5") == []
    assert validate_cron("0 9 * 13 *") != []
    assert validate_cron("0 9 * *") == ["must have five fields: minute hour day-of-month month day-of-week"]


def test_it_knows_time_zones():
    assert validate_timezone("Europe/Paris") == []
    assert validate_timezone("Mars/Olympus") != []
