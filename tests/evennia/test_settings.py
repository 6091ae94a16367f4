"""Fast Django/Evennia settings for the Evennia-side tests (no game directory needed)."""

import os
import tempfile

_cwd = os.getcwd()
try:
    # settings_default walks up from the cwd looking for a game dir (os.chdir!): undo that.
    from evennia.settings_default import *  # noqa: F403
finally:
    os.chdir(_cwd)

GAME_DIR = os.path.join(tempfile.gettempdir(), "uniwizard-evennia-tests")  # logs only
LOG_DIR = os.path.join(GAME_DIR, "logs")
SERVER_LOG_FILE = os.path.join(LOG_DIR, "server.log")
PORTAL_LOG_FILE = os.path.join(LOG_DIR, "portal.log")
HTTP_LOG_FILE = os.path.join(LOG_DIR, "http_requests.log")
LOCKWARNING_LOG_FILE = os.path.join(LOG_DIR, "lockwarnings.log")

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
TEST_ENVIRONMENT = True
DEBUG = False

# No game folder: point everything a game would provide at Evennia's own defaults
# (the same values as evennia.utils.test_resources.DEFAULT_SETTING_RESETS).
_T = "evennia.game_template"
CONNECTION_SCREEN_MODULE = f"{_T}.server.conf.connection_screens"
AT_SERVER_STARTSTOP_MODULE = f"{_T}.server.conf.at_server_startstop"
AT_SERVICES_PLUGINS_MODULES = [f"{_T}.server.conf.server_services_plugins"]
PORTAL_SERVICES_PLUGIN_MODULES = [f"{_T}.server.conf.portal_services_plugins"]
MSSP_META_MODULE = f"{_T}.server.conf.mssp"
LOCK_FUNC_MODULES = ("evennia.locks.lockfuncs", f"{_T}.server.conf.lockfuncs")
INPUT_FUNC_MODULES = ["evennia.server.inputfuncs", f"{_T}.server.conf.inputfuncs"]
PROTOTYPE_MODULES = [f"{_T}.world.prototypes"]
CMDSET_UNLOGGEDIN = f"{_T}.commands.default_cmdsets.UnloggedinCmdSet"
CMDSET_SESSION = f"{_T}.commands.default_cmdsets.SessionCmdSet"
CMDSET_CHARACTER = f"{_T}.commands.default_cmdsets.CharacterCmdSet"
CMDSET_ACCOUNT = f"{_T}.commands.default_cmdsets.AccountCmdSet"
CMDSET_PATHS = [f"{_T}.commands", "evennia", "evennia.contrib"]
TYPECLASS_PATHS = ["evennia", "evennia.contrib"]
BASE_ACCOUNT_TYPECLASS = "evennia.accounts.accounts.DefaultAccount"
BASE_OBJECT_TYPECLASS = "evennia.objects.objects.DefaultObject"
BASE_CHARACTER_TYPECLASS = "evennia.objects.objects.DefaultCharacter"
BASE_ROOM_TYPECLASS = "evennia.objects.objects.DefaultRoom"
BASE_EXIT_TYPECLASS = "evennia.objects.objects.DefaultExit"
BASE_CHANNEL_TYPECLASS = "evennia.comms.comms.DefaultChannel"
BASE_SCRIPT_TYPECLASS = "evennia.scripts.scripts.DefaultScript"
BASE_GUEST_TYPECLASS = "evennia.accounts.accounts.DefaultGuest"
BASE_BATCHPROCESS_PATHS = [f"{_T}.world", "evennia.contrib", "evennia.contrib.tutorials"]
FILE_HELP_ENTRY_MODULES = [f"{_T}.world.help_entries"]
FUNCPARSER_OUTGOING_MESSAGES_MODULES = ["evennia.utils.funcparser",
                                        f"{_T}.server.conf.inlinefuncs"]
FUNCPARSER_PROTOTYPE_PARSING_MODULES = ["evennia.prototypes.protfuncs",
                                        f"{_T}.server.conf.prototypefuncs"]
DEFAULT_HOME = "#1"

# Uniwizard: the tests point these at the in-process stack.
UNIWIZARD_DEADLINE = 20
UNIWIZARD_SYSTEM_PROMPT = "You are a careful assistant. Answer the task."


class _NoMigrations:
    """Create the tables straight from the models: much faster than running every migration."""

    def __contains__(self, app: str) -> bool:
        return True

    def __getitem__(self, app: str) -> None:
        return None


MIGRATION_MODULES = _NoMigrations()
