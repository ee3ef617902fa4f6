# Result and Status are [[nodiscard]]: a call whose Result is dropped does not
# compile under -Werror=unused-result, while the same call with its Result
# used (or cast to void on purpose) does. Both halves are checked, so a broken
# compiler command cannot pass for a diagnosed drop.
#   cmake -DCXX=<compiler> -DINCLUDE=<libota/include> -DWORK=<dir> -P check_nodiscard.cmake
cmake_minimum_required(VERSION 3.22)

set(prelude "#include \"ota/core/error.hpp\"\nota::Status step() { return ota::ok(); }\nota::Result<int> value() { return 1; }\n")
file(MAKE_DIRECTORY "${WORK}")
set(failures "")
# Compiles `body` after the prelude; `expect` is PASS or FAIL (diagnosed drop).
# (`SEMI` stands for a semicolon, which a CMake argument cannot carry plainly.)
function(check name expect body)
  string(REPLACE "SEMI" ";" body "${body}")
  file(WRITE "${WORK}/${name}.cpp" "${prelude}${body}\n")
  execute_process(COMMAND "${CXX}" -std=c++20 -fsyntax-only -Werror=unused-result -I "${INCLUDE}" "${WORK}/${name}.cpp"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(expect STREQUAL "PASS" AND NOT rc EQUAL 0)
    set(failures ${failures} "${name}: should compile but did not:\n${err}" PARENT_SCOPE)
  elseif(expect STREQUAL "FAIL")
    if(rc EQUAL 0)
      set(failures ${failures} "${name}: a dropped Result compiled without a diagnostic" PARENT_SCOPE)
    elseif(NOT err MATCHES "unused-result|ignoring return value")
      set(failures ${failures} "${name}: failed for another reason than the dropped Result:\n${err}" PARENT_SCOPE)
    endif()
  endif()
endfunction()
check(used PASS "int main() { ota::Status s = step()SEMI auto v = value()SEMI return s && v ? 0 : 1SEMI }")
check(voided PASS "int main() { (void)step()SEMI (void)value()SEMI return 0SEMI }")
check(status_dropped FAIL "int main() { step()SEMI return 0SEMI }")
check(result_dropped FAIL "int main() { value()SEMI return 0SEMI }")
if(failures)
  string(JOIN "\n" msg ${failures})
  message(FATAL_ERROR "${msg}")
endif()
message(STATUS "Result/Status are [[nodiscard]]: 2 uses compile, 2 drops are diagnosed")
