# Writes the version header at build time (cmake -P, run by the iclbench_revision target on every
# build), so that `iclbench info` and the result fingerprints name the commit that was built, not
# the one the build directory was configured at. configure_file leaves OUT untouched when its text
# is unchanged, so an unchanged revision recompiles nothing.
# In: SOURCE_DIR, IN (version.hpp.in), OUT, PROJECT_VERSION.
execute_process(COMMAND git rev-parse --short=12 HEAD
                WORKING_DIRECTORY ${SOURCE_DIR} RESULT_VARIABLE status
                OUTPUT_VARIABLE ICLBENCH_GIT_REVISION OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT status EQUAL 0 OR NOT ICLBENCH_GIT_REVISION)
  set(ICLBENCH_GIT_REVISION "unknown")  # a source tree without git (a tarball)
else()
  # Tracked files that differ from HEAD: the binary is not that commit, and the stamp says so.
  execute_process(COMMAND git status --porcelain --untracked-files=no
                  WORKING_DIRECTORY ${SOURCE_DIR} OUTPUT_VARIABLE changes ERROR_QUIET)
  if(changes)
    string(APPEND ICLBENCH_GIT_REVISION "-dirty")
  endif()
endif()
configure_file(${IN} ${OUT} @ONLY)
