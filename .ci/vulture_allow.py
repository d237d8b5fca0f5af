# Names vulture cannot see used: Typer commands and callbacks (registered by decorator),
# attributes set for psycopg and decimal contexts, and the urllib redirect hook.
main_callback  # unused function (analytics_cli/cli.py:197)
version  # unused variable (analytics_cli/cli.py:209)
db_init  # unused function (analytics_cli/cli.py:334)
db_migrate  # unused function (analytics_cli/cli.py:337)
db_rollup  # unused function (a Typer command)
large  # unused variable (analytics_cli/cli.py:640)
postgresql  # Dialect member, chosen by name on the command line
demo_cmd  # unused function (analytics_cli/cli.py:653)
config_init  # unused function (analytics_cli/cli.py:878)
config_show  # unused function (analytics_cli/cli.py:897)
config_check  # unused function (analytics_cli/cli.py:918)
metrics_cmd  # unused function (analytics_cli/cli.py:1002)
status_cmd  # unused function (analytics_cli/cli.py:1057)
prune_cmd  # unused function (analytics_cli/cli.py:1097)
spool_list  # unused function (analytics_cli/cli.py:999)
spool_drop  # unused function (analytics_cli/cli.py:1046)
_.prec  # unused attribute (analytics_cli/jsonpath.py:60)
_.prec  # unused attribute (analytics_cli/jsonpath.py:203)
_.redirect_request  # unused method (analytics_cli/sources/http.py:58)
_.isolation_level  # psycopg connection attribute, read by the driver
_.option_file  # MySQLParams field: the option file read, shown by describe and the tests
