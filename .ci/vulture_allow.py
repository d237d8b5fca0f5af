# Names vulture cannot see used: Typer commands and callbacks (registered by decorator),
# attributes set for psycopg and decimal contexts, and the urllib redirect hook.
main_callback  # unused function (analytics_cli/cli.py:99)
version  # unused variable (analytics_cli/cli.py:131)
db_init  # unused function (analytics_cli/commands/db.py:22)
db_migrate  # unused function (analytics_cli/commands/db.py:34)
large  # unused variable (analytics_cli/commands/demo.py:24)

config_init  # unused function (analytics_cli/commands/config.py:59)
config_show  # unused function (analytics_cli/commands/config.py:92)
config_check  # unused function (analytics_cli/commands/config.py:103)
spool_list  # unused function (analytics_cli/commands/spool.py:21)
spool_drop  # unused function (analytics_cli/commands/spool.py:68)
_.prec  # unused attribute (analytics_cli/jsonpath.py:60)
_.prec  # unused attribute (analytics_cli/jsonpath.py:203)
_.redirect_request  # unused method (analytics_cli/sources/http.py:58)
_.isolation_level  # psycopg connection attribute, read by the driver
_.option_file  # MySQLParams field: the option file read, shown by describe and the tests
postgresql  # Dialect member (dsn.py), chosen by name on the command line
mysql  # Dialect member (dsn.py), chosen by name on the command line
